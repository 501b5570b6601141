"""``RolloutTrigger``: waits in the triggerer until a gateway rollout settles.

The gateway runs the rollout (analysis, automatic rollback) itself; the trigger only polls its
state, so a canary with long analysis windows holds no worker slot between steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class RolloutTrigger(BaseTrigger):
    """Fires once the rollout of ``deployment`` is in one of ``until`` (or the gateway fails us).

    Transitions seen while waiting are logged, so the task log tells the rollout's story.
    """

    def __init__(
        self,
        deployment: str,
        gateway_conn_id: str,
        until: list[str] | tuple[str, ...] = ("succeeded", "rolled_back", "failed", "paused", "switched"),
        poll_interval: float = 5.0,
        seen: int = 0,
    ) -> None:
        super().__init__()
        self.deployment = deployment
        self.gateway_conn_id = gateway_conn_id
        self.until = list(until)
        self.poll_interval = float(poll_interval)
        self.seen = int(seen)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "deployment": self.deployment,
                "gateway_conn_id": self.gateway_conn_id,
                "until": self.until,
                "poll_interval": self.poll_interval,
                "seen": self.seen,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from conveyor.clients.gateway import GatewayClientError, fetch_rollout
        from conveyor.hooks.gateway import GatewayHook

        url, token = await GatewayHook.asettings(self.gateway_conn_id)
        while True:
            try:
                rollout = await fetch_rollout(url, token, self.deployment)
            except GatewayClientError as exc:
                yield TriggerEvent({"status": "error", "message": str(exc)})
                return
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
            if rollout.get("state") in self.until:
                yield TriggerEvent({"status": rollout["state"], "rollout": rollout})
                return
            await asyncio.sleep(self.poll_interval)
