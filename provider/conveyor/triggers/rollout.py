"""``RolloutTrigger``: waits in the triggerer until a gateway rollout settles.

The gateway runs the rollout (analysis, automatic rollback) itself; the trigger only polls its
state, so a canary with long analysis windows holds no worker slot between steps. It fails,
never polls forever, when the gateway no longer knows the rollout (a restart loses it: 404 for
the deployment, no rollout, or another rollout than the one it waits for) or stays unreachable
longer than ``unreachable_timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from conveyor.clients.gateway import (
    SETTLED_STATES,
    GatewayClientError,
    arrived,
    fetch_deployment,
    rollout_key,
    rollout_lost,
)


class RolloutTrigger(BaseTrigger):
    """Fires once the rollout of ``deployment`` is in one of ``until`` (or the gateway fails us).

    Transitions seen while waiting are logged, so the task log tells the rollout's story.

    :param model_uri: the version the awaited rollout deploys; with ``started_at`` (the time of
        its first transition, filled in on first sight when not known yet) it identifies the
        rollout, which has no id of its own (``conveyor.clients.gateway.rollout_key``).
    :param unreachable_timeout: seconds the gateway may stay unreachable (or answer 5xx), e.g.
        while it restarts, before the trigger fails; counted in this triggerer process.
    """

    def __init__(
        self,
        deployment: str,
        gateway_conn_id: str,
        until: list[str] | tuple[str, ...] = SETTLED_STATES,
        poll_interval: float = 5.0,
        seen: int = 0,
        model_uri: str | None = None,
        started_at: str | None = None,
        unreachable_timeout: float = 300.0,
    ) -> None:
        super().__init__()
        if unreachable_timeout <= 0:
            raise ValueError(f"unreachable_timeout must be positive, got {unreachable_timeout}")
        self.deployment = deployment
        self.gateway_conn_id = gateway_conn_id
        self.until = list(until)
        self.poll_interval = float(poll_interval)
        self.seen = int(seen)
        self.model_uri = model_uri
        self.started_at = started_at
        self.unreachable_timeout = float(unreachable_timeout)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "deployment": self.deployment,
                "gateway_conn_id": self.gateway_conn_id,
                "until": self.until,
                "poll_interval": self.poll_interval,
                "seen": self.seen,
                "model_uri": self.model_uri,
                "started_at": self.started_at,
                "unreachable_timeout": self.unreachable_timeout,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from conveyor.hooks.gateway import GatewayHook

        url, token = await GatewayHook.asettings(self.gateway_conn_id)
        unreachable_since: float | None = None
        while True:
            try:
                described = await fetch_deployment(url, token, self.deployment)
            except GatewayClientError as exc:
                if exc.status is not None and exc.status < 500:  # 404: the deployment is gone
                    yield self._error(f"the gateway no longer knows the rollout: {exc}")
                    return
                unreachable_since = unreachable_since or time.monotonic()
                waited = time.monotonic() - unreachable_since
                if waited >= self.unreachable_timeout:
                    yield self._error(f"gateway unreachable for {waited:.0f}s: {exc}")
                    return
                self.log.warning("%s; retrying for up to %.0fs more", exc, self.unreachable_timeout - waited)
                await asyncio.sleep(min(self.poll_interval, self.unreachable_timeout - waited))
                continue
            unreachable_since = None
            rollout = described.get("rollout") or {}
            lost = rollout_lost(self.deployment, self._key(), rollout)
            if lost:
                yield self._error(lost)
                return
            self.started_at = self.started_at or rollout_key(rollout)["started_at"]
            transitions = rollout.get("transitions", [])
            for t in transitions[self.seen :]:
                self.log.info(
                    "%s: %s -> %s (canary %s%%): %s",
                    t["at"],
                    t["from"],
                    t["to"],
                    t["canary_weight"],
                    t["reason"],
                )
            self.seen = len(transitions)
            if arrived(described, self.until):
                yield TriggerEvent({"status": rollout["state"], "rollout": rollout})
                return
            await asyncio.sleep(self.poll_interval)

    def _key(self) -> dict[str, str | None]:
        return {"model_uri": self.model_uri, "started_at": self.started_at}

    def _error(self, message: str) -> TriggerEvent:
        return TriggerEvent({"status": "error", "message": message})
