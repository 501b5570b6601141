"""Client of the gateway's admin and scoring API (httpx), for the CLI, operators, the plugin and tests.

This module never imports Airflow or MLflow: it is the one description of the gateway's HTTP API
that everything else uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

TERMINAL_STATES = ("succeeded", "rolled_back", "failed")
# Where a rollout waits for nobody: finished, paused for a person, or blue-green switched (the
# new version serves; the old one is only kept warm).
SETTLED_STATES = (*TERMINAL_STATES, "paused", "switched")


class GatewayClientError(RuntimeError):
    """The gateway refused or failed a request; ``status`` is the HTTP status (None: unreachable)."""

    def __init__(self, message: str, status: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def _raise_for(response: httpx.Response) -> Any:
    try:
        payload = response.json()
    except ValueError:
        payload = {"message": response.text}
    if response.status_code >= 400:
        message = payload.get("message", response.text) if isinstance(payload, dict) else response.text
        field = payload.get("field") if isinstance(payload, dict) else None
        raise GatewayClientError(
            f"gateway answered {response.status_code}: {message}", status=response.status_code, field=field
        )
    return payload


class GatewayClient:
    """Blocking client; ``url`` like ``http://127.0.0.1:8080``, ``token`` the admin token."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, json: Any = None, headers: dict | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=json, headers=headers)
        except httpx.TransportError as exc:
            raise GatewayClientError(f"gateway at {self.url} is unreachable: {exc}") from exc
        return _raise_for(response)

    @staticmethod
    def _dep(name: str) -> str:
        return f"/admin/deployments/{quote(name, safe='')}"

    # ---- admin ----
    def status(self) -> dict[str, Any]:
        return self._call("GET", "/admin/deployments")

    def deployment(self, name: str) -> dict[str, Any]:
        return self._call("GET", self._dep(name))

    def exists(self, name: str) -> bool:
        try:
            self.deployment(name)
        except GatewayClientError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def deploy_slot(self, name: str, model_uri: str, slot: str = "stable") -> dict[str, Any]:
        # POST, not PUT: a load balancer replays a PUT that a dying replica had received (nginx
        # treats PUT as idempotent), and a replayed load costs seconds and memory twice.
        return self._call("POST", f"{self._dep(name)}/slots/{slot}", json={"model_uri": model_uri})

    def remove_slot(self, name: str, slot: str) -> dict[str, Any]:
        return self._call("DELETE", f"{self._dep(name)}/slots/{slot}")

    def set_weights(
        self, name: str, canary: int | None = None, shadow: float | None = None
    ) -> dict[str, Any]:
        return self._call("POST", f"{self._dep(name)}/weights", json={"canary": canary, "shadow": shadow})

    def promote(self, name: str, slot: str = "canary") -> dict[str, Any]:
        return self._call("POST", f"{self._dep(name)}/promote", json={"slot": slot})

    def rollback(self, name: str, model_uri: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"{self._dep(name)}/rollback", json={"model_uri": model_uri})

    def reload(self, name: str) -> dict[str, Any]:
        return self._call("POST", f"{self._dep(name)}/reload")

    def delete(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", self._dep(name))

    def start_rollout(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"{self._dep(name)}/rollouts", json=spec)

    def rollout_action(self, name: str, action: str) -> dict[str, Any]:
        return self._call("POST", f"{self._dep(name)}/rollout/{action}")

    def wait_rollout(
        self,
        name: str,
        timeout: float = 600.0,
        poll_s: float = 1.0,
        until: tuple[str, ...] = SETTLED_STATES,
        progress: Callable[[dict[str, Any]], None] | None = None,
        key: dict[str, str | None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the rollout reaches one of ``until``; returns its final description.

        With ``key`` (``rollout_key`` of the rollout started), a gateway that no longer holds that
        rollout (restarted, or another rollout started since) raises at once instead of waiting.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            described = self.deployment(name)
            rollout = described.get("rollout") or {}
            if key is not None:
                lost = rollout_lost(name, key, rollout)
                if lost:
                    raise GatewayClientError(lost)
                key = {**key, "started_at": key.get("started_at") or rollout_key(rollout)["started_at"]}
            transitions = rollout.get("transitions", [])
            if progress is not None:
                for transition in transitions[seen:]:
                    progress(transition)
                seen = len(transitions)
            if arrived(described, until):
                return rollout
            if time.monotonic() > deadline:
                raise GatewayClientError(
                    f"rollout of {name} still {rollout.get('state')} after {timeout:.0f}s"
                )
            time.sleep(poll_s)

    # ---- scoring ----
    def predict(
        self, payload: dict[str, Any], deployment: str | None = None, **headers: str
    ) -> httpx.Response:
        """The raw response (status, headers naming the answering version, body)."""
        path = (
            "/invocations" if deployment is None else f"/deployments/{quote(deployment, safe='')}/invocations"
        )
        return self._http.post(
            path, json=payload, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )

    def feedback(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/feedback", json={"feedback": items})


def rollout_key(rollout: dict[str, Any]) -> dict[str, str | None]:
    """What tells one rollout of a deployment from another. The gateway gives a rollout no id, so
    the key is its version URI and the time of its first transition (its start: unique per
    rollout, and lost with the rollout when the gateway restarts). ``started_at`` is ``None``
    while the rollout has not started yet."""
    transitions = rollout.get("transitions") or []
    return {
        "model_uri": (rollout.get("spec") or {}).get("model_uri"),
        "started_at": transitions[0]["at"] if transitions else None,
    }


def rollout_lost(name: str, key: dict[str, str | None], rollout: dict[str, Any]) -> str | None:
    """Why ``rollout`` (the deployment's current one) is not the rollout ``key`` names, or ``None``.

    A waiter that polled on would otherwise wait forever for a rollout that no longer exists.
    """
    wanted = f"the rollout of {key.get('model_uri')}" + (
        f" started {key['started_at']}" if key.get("started_at") else ""
    )
    if not rollout:
        return f"the gateway no longer knows {wanted}: {name!r} has no rollout (gateway restarted?)"
    found = rollout_key(rollout)
    if key.get("model_uri") and found["model_uri"] != key["model_uri"]:
        return f"the gateway no longer knows {wanted}: {name!r} now has a rollout of {found['model_uri']}"
    if key.get("started_at") and found["started_at"] != key["started_at"]:
        return (
            f"the gateway no longer knows {wanted}: {name!r} now has another rollout, started "
            f"{found['started_at'] or 'not yet'}"
        )
    return None


def arrived(described: dict[str, Any], until: tuple[str, ...] | list[str]) -> bool:
    """Whether a deployment's rollout (``GatewayClient.deployment``) is in one of ``until`` and
    every replica already serves that state: the store holds the state the moment the controller
    writes it, and replicas apply it a moment later, so a caller that acted on the state alone
    could still be answered by the old version."""
    return (described.get("rollout") or {}).get("state") in until and bool(described["converged"])


async def fetch_deployment(url: str, token: str | None, name: str, timeout: float = 30.0) -> dict[str, Any]:
    """One async read of a deployment (for the Airflow trigger, which must not block)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout) as http:
        try:
            response = await http.get(f"/admin/deployments/{quote(name, safe='')}")
        except httpx.TransportError as exc:
            raise GatewayClientError(f"gateway at {url} is unreachable: {exc}") from exc
    return _raise_for(response)
