"""Airflow REST API v2 client (httpx), sync and async, for tests, the demo, magics and the Jupyter server.

Every endpoint is described once, in ``_Endpoints``, as a ``Call`` (method, path, query, body,
what to pick from the answer). Two thin transports execute calls: ``AirflowClient`` (blocking,
for magics, tests and scripts) and ``AsyncAirflowClient`` (for the Jupyter server extension,
which must never block its event loop). Login is an ``httpx.Auth`` flow, which httpx runs for
both transports: it fetches a JWT from ``POST /auth/token``, renews it shortly before it expires
and once more when Airflow answers 401 (an api-server restart invalidates tokens).

This module never imports Airflow, so the Jupyter extension can use it in a lean environment.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

API = "/api/v2"


class AirflowError(RuntimeError):
    """Airflow refused or failed a request; ``status`` is the HTTP status, ``detail`` Airflow's reason."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class AirflowUnreachableError(AirflowError):
    """Nothing answered at the configured URL (not started, wrong port, network)."""


class AirflowAuthError(AirflowError):
    """Login refused (401) or the user lacks the permission (403)."""


class AirflowNotFoundError(AirflowError):
    """Unknown DAG, run, task or backfill (404)."""


class AirflowRequestError(AirflowError):
    """Airflow rejected the request itself (400, 409, 422): bad conf, wrong state, invalid field."""


@dataclass(frozen=True)
class Call:
    """One REST call, independent of the transport that runs it."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    body: Any = None
    pick: Callable[[Any], Any] | None = None


def _seg(value: str) -> str:
    """Run ids such as ``manual__2013-01-01T00:00:00+00:00`` hold ``+`` and ``:``: encode everything."""
    return quote(str(value), safe="")


def _run_path(dag_id: str, run_id: str) -> str:
    return f"{API}/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}"


def _ti_path(dag_id: str, run_id: str, task_id: str) -> str:
    return f"{_run_path(dag_id, run_id)}/taskInstances/{_seg(task_id)}"


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _format_detail(detail: Any) -> str:
    """Airflow's 422 detail is a list of pydantic errors: say which field and why."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{where}: {item.get('msg', item)}" if where else str(item.get("msg", item)))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def _decode(base_url: str, call: Call, response: httpx.Response) -> Any:
    """Turn a response into the picked JSON value, or into the specific error a user can act on."""
    if response.is_success:
        if not response.content:
            return None
        data = response.json()
        return call.pick(data) if call.pick else data
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    where = f"{call.method} {base_url}{call.path}"
    message = f"{where} -> {response.status_code}: {_format_detail(detail)}"
    status = response.status_code
    if status in (401, 403):
        error: type[AirflowError] = AirflowAuthError
    elif status == 404:
        error = AirflowNotFoundError
    elif status in (400, 409, 422):
        error = AirflowRequestError
    else:
        error = AirflowError
    raise error(message, status=status, detail=detail)


class _JwtAuth(httpx.Auth):
    """Bearer JWT from ``POST /auth/token``; renewed before expiry and once after a 401/403."""

    requires_response_body = True
    renew_before_s = 30.0

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self._base_url = base_url
        self._username = username
        self._password = password
        self._token: str | None = None
        self._expires_at = 0.0

    def _login_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{self._base_url}/auth/token",
            json={"username": self._username, "password": self._password},
        )

    def _store(self, response: httpx.Response) -> None:
        if response.status_code in (401, 403):
            raise AirflowAuthError(
                f"Airflow at {self._base_url} refused the login of user {self._username!r} "
                f"({response.status_code}): check the username and password",
                status=response.status_code,
            )
        if not response.is_success:
            raise AirflowError(
                f"login at {self._base_url}/auth/token failed ({response.status_code}): "
                f"{response.text[:300]}",
                status=response.status_code,
            )
        self._token = response.json()["access_token"]
        self._expires_at = _jwt_expiry(self._token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None or time.time() > self._expires_at - self.renew_before_s:
            self._store((yield self._login_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        # Airflow answers 403 "Invalid JWT token" to a token it cannot verify (api-server restarted
        # with another secret), 401 to an expired one: log in again once; a real permission error
        # answers 403 again and surfaces as AirflowAuthError.
        if response.status_code in (401, 403):
            self._store((yield self._login_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


def _jwt_expiry(token: str) -> float:
    """The ``exp`` claim, read without verifying: only to know when to log in again."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, ValueError):
        return 0.0  # unknown expiry: renew on every request rather than risk a stale token


class _Endpoints:
    """The Airflow REST API v2 calls Conveyor uses, described once for both transports.

    In ``AirflowClient`` each method returns the decoded JSON; in ``AsyncAirflowClient`` it
    returns an awaitable of it.
    """

    def _send(self, call: Call) -> Any:
        raise NotImplementedError

    # --- service ---------------------------------------------------------------------------
    def health(self) -> Any:
        """Component health (metadatabase, scheduler, triggerer, dag_processor); needs no login."""
        return self._send(Call("GET", f"{API}/monitor/health"))

    def version(self) -> Any:
        return self._send(Call("GET", f"{API}/version"))

    def import_errors(self) -> Any:
        """DAG files that failed to parse: ``[{filename, stack_trace, ...}]``."""
        return self._send(Call("GET", f"{API}/importErrors", pick=lambda d: d["import_errors"]))

    # --- DAGs ------------------------------------------------------------------------------
    def list_dags(self, dag_id_pattern: str | None = None, limit: int = 100) -> Any:
        params = {"limit": limit, "dag_id_pattern": dag_id_pattern}
        return self._send(Call("GET", f"{API}/dags", params=params, pick=lambda d: d["dags"]))

    def get_dag(self, dag_id: str) -> Any:
        return self._send(Call("GET", f"{API}/dags/{_seg(dag_id)}"))

    def dag_details(self, dag_id: str) -> Any:
        """The DAG with its ``params`` (defaults, descriptions, schema): what the trigger form shows."""
        return self._send(Call("GET", f"{API}/dags/{_seg(dag_id)}/details"))

    def set_paused(self, dag_id: str, paused: bool) -> Any:
        return self._send(Call("PATCH", f"{API}/dags/{_seg(dag_id)}", body={"is_paused": paused}))

    def unpause_dag(self, dag_id: str) -> Any:
        return self.set_paused(dag_id, False)

    # --- runs ------------------------------------------------------------------------------
    def trigger_dag_run(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        *,
        logical_date: datetime | str | None = None,
        run_id: str | None = None,
        note: str | None = None,
    ) -> Any:
        """Start a run. ``logical_date=None`` is a run without data interval (Airflow requires the key)."""
        body: dict[str, Any] = {"logical_date": _iso(logical_date), "conf": conf or {}}
        if run_id is not None:
            body["dag_run_id"] = run_id
        if note is not None:
            body["note"] = note
        return self._send(Call("POST", f"{API}/dags/{_seg(dag_id)}/dagRuns", body=body))

    def list_dag_runs(
        self,
        dag_id: str = "~",
        *,
        limit: int = 50,
        order_by: str = "-run_after",
        run_type: Iterable[str] | None = None,
        state: Iterable[str] | None = None,
    ) -> Any:
        """Runs of one DAG (``~`` for all DAGs), newest first."""
        params = {"limit": limit, "order_by": order_by, "run_type": run_type and list(run_type)}
        params["state"] = state and list(state)
        return self._send(
            Call("GET", f"{API}/dags/{_seg(dag_id)}/dagRuns", params=params, pick=lambda d: d["dag_runs"])
        )

    def get_dag_run(self, dag_id: str, run_id: str) -> Any:
        return self._send(Call("GET", _run_path(dag_id, run_id)))

    def set_dag_run_state(self, dag_id: str, run_id: str, state: str) -> Any:
        """``success``, ``failed`` or ``queued``; running tasks of a run set to failed are stopped."""
        path = _run_path(dag_id, run_id)
        return self._send(Call("PATCH", path, body={"state": state}))

    def cancel_dag_run(self, dag_id: str, run_id: str) -> Any:
        """What the UI's "mark as failed" does: the scheduler stops the run's running tasks."""
        return self.set_dag_run_state(dag_id, run_id, "failed")

    # --- task instances --------------------------------------------------------------------
    def task_instances(self, dag_id: str, run_id: str) -> Any:
        path = f"{_run_path(dag_id, run_id)}/taskInstances"
        return self._send(Call("GET", path, params={"limit": 1000}, pick=lambda d: d["task_instances"]))

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        path = _ti_path(dag_id, run_id, task_id)
        if map_index >= 0:
            path += f"/{map_index}"
        return self._send(Call("GET", path))

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> Any:
        """Structured log lines ``[{timestamp, event, level, ...}]`` of one try; see ``format_log``."""
        path = f"{_ti_path(dag_id, run_id, task_id)}/logs/{try_number}"
        params = {"full_content": True, "map_index": map_index}
        return self._send(Call("GET", path, params=params, pick=lambda d: d["content"]))

    def clear_task_instances(
        self, dag_id: str, run_id: str, task_ids: Iterable[str], *, include_downstream: bool = False
    ) -> Any:
        """Re-run tasks of a run (whatever their state), as the UI's Clear button does."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": list(task_ids),
            "only_failed": False,
            "reset_dag_runs": True,
            "include_downstream": include_downstream,
        }
        path = f"{API}/dags/{_seg(dag_id)}/clearTaskInstances"
        return self._send(Call("POST", path, body=body, pick=lambda d: d["task_instances"]))

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        path = f"{_ti_path(dag_id, run_id, task_id)}/xcomEntries/{_seg(key)}"
        params = {"map_index": map_index, "deserialize": True}
        return self._send(Call("GET", path, params=params, pick=lambda d: d["value"]))

    # --- connections -----------------------------------------------------------------------
    def create_connection(
        self,
        conn_id: str,
        conn_type: str,
        *,
        host: str | None = None,
        password: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        """What Admin → Connections → Add does; stored (encrypted) in Airflow's database."""
        body = {"connection_id": conn_id, "conn_type": conn_type, "host": host, "password": password}
        if extra is not None:
            body["extra"] = json.dumps(extra)
        return self._send(Call("POST", f"{API}/connections", body=body))

    # --- backfills -------------------------------------------------------------------------
    def create_backfill(
        self,
        dag_id: str,
        from_date: datetime | str,
        to_date: datetime | str,
        *,
        max_active_runs: int = 1,
        reprocess_behavior: str = "none",
        dag_run_conf: dict[str, Any] | None = None,
        run_backwards: bool = False,
    ) -> Any:
        """Runs for every schedule date in [from_date, to_date]; Airflow's own default of 10
        concurrent runs would start ten trainings at once, hence ``max_active_runs=1`` here."""
        body = {
            "dag_id": dag_id,
            "from_date": _iso(from_date),
            "to_date": _iso(to_date),
            "max_active_runs": max_active_runs,
            "reprocess_behavior": reprocess_behavior,
            "dag_run_conf": dag_run_conf or {},
            "run_backwards": run_backwards,
        }
        return self._send(Call("POST", f"{API}/backfills", body=body))

    def get_backfill(self, backfill_id: int) -> Any:
        return self._send(Call("GET", f"{API}/backfills/{backfill_id}"))

    def list_backfills(self, dag_id: str) -> Any:
        return self._send(
            Call("GET", f"{API}/backfills", params={"dag_id": dag_id}, pick=lambda d: d["backfills"])
        )

    def cancel_backfill(self, backfill_id: int) -> Any:
        return self._send(Call("PUT", f"{API}/backfills/{backfill_id}/cancel"))

    # --- human in the loop -----------------------------------------------------------------
    def hitl_details(
        self, dag_id: str = "~", run_id: str = "~", *, response_received: bool | None = None
    ) -> Any:
        """Approval requests of a run (``~`` for all); ``response_received=False`` lists pending ones."""
        path = f"{_run_path(dag_id, run_id)}/hitlDetails"
        params = {"response_received": response_received}
        return self._send(Call("GET", path, params=params, pick=lambda d: d["hitl_details"]))

    def respond_hitl(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        chosen_options: list[str],
        params_input: dict[str, Any] | None = None,
        map_index: int = -1,
    ) -> Any:
        path = f"{_ti_path(dag_id, run_id, task_id)}/{map_index}/hitlDetails"
        body = {"chosen_options": chosen_options, "params_input": params_input or {}}
        return self._send(Call("PATCH", path, body=body))

    def approve(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """Answer an ``ApprovalOperator`` with Approve."""
        return self.respond_hitl(dag_id, run_id, task_id, ["Approve"])

    def reject(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """Answer an ``ApprovalOperator`` with Reject: its downstream tasks are skipped."""
        return self.respond_hitl(dag_id, run_id, task_id, ["Reject"])


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop unset query parameters so Airflow applies its own defaults."""
    if params is None:
        return None
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}


TERMINAL_RUN_STATES = frozenset({"success", "failed"})


def format_log(lines: Iterable[dict[str, Any]]) -> str:
    """Structured log lines as the text a person reads: ``timestamp [level] logger: event``."""
    out = []
    for line in lines:
        if not isinstance(line, dict):
            out.append(str(line))
            continue
        head = " ".join(
            part
            for part in (
                str(line.get("timestamp") or ""),
                f"[{line['level']}]" if line.get("level") else "",
                f"{line['logger']}:" if line.get("logger") else "",
            )
            if part
        )
        event = str(line.get("event", ""))
        out.append(f"{head} {event}".strip())
        if line.get("error_detail"):
            out.append(json.dumps(line["error_detail"], indent=2, default=str))
    return "\n".join(out)


class AirflowClient(_Endpoints):
    """Blocking client: ``with AirflowClient(url, "admin", "admin") as af: af.list_dags()``."""

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, auth=_JwtAuth(self.base_url, username, password), timeout=timeout
        )

    def _send(self, call: Call) -> Any:
        try:
            response = self._http.request(call.method, call.path, params=_clean(call.params), json=call.body)
        except httpx.TransportError as exc:
            raise AirflowUnreachableError(f"Airflow at {self.base_url} is unreachable: {exc!r}") from exc
        return _decode(self.base_url, call, response)

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0, poll: float = 1.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; name the import error if it failed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get_dag(dag_id)
            except AirflowNotFoundError:
                if time.monotonic() > deadline:
                    errors = "; ".join(
                        f"{e['filename']}: {e['stack_trace'][-300:]}" for e in self.import_errors()
                    )
                    raise TimeoutError(
                        f"DAG {dag_id!r} not parsed within {timeout:.0f}s (import errors: {errors or 'none'})"
                    ) from None
                time.sleep(poll)

    def wait_for_approval(
        self, dag_id: str, run_id: str, timeout: float = 600.0, settle: float = 10.0, poll: float = 1.0
    ) -> dict[str, Any]:
        """The run's first open approval, once its task has sat in ``awaiting_input`` for ``settle`` s.

        Airflow 3.3.2 fails a HITL task answered before the scheduler has processed the exit of
        its first process: the answer re-queues the task, then ``process_executor_events`` sees
        "finished with state success, but the state attribute is queued" and fails it. A person
        never answers that fast; a script must wait like one.
        """
        deadline = time.monotonic() + timeout
        parked_since: float | None = None
        while True:
            pending = [
                d
                for d in self.hitl_details(dag_id, run_id, response_received=False)
                if (d.get("task_instance") or {}).get("state") == "awaiting_input"
            ]
            now = time.monotonic()
            parked_since = (parked_since or now) if pending else None
            if pending and now - parked_since >= settle:
                return pending[0]
            if not pending and self.get_dag_run(dag_id, run_id)["state"] in TERMINAL_RUN_STATES:
                raise RuntimeError(
                    f"{dag_id}/{run_id} ended without asking for approval: {self.why(dag_id, run_id)}"
                )
            if now > deadline:
                raise TimeoutError(
                    f"{dag_id}/{run_id}: no approval waiting after {timeout:.0f}s: {self.why(dag_id, run_id)}"
                )
            time.sleep(poll)

    def why(self, dag_id: str, run_id: str, tail: int = 15) -> str:
        """Each task's state, then why each failed task failed: its exceptions, else its log's last lines."""
        instances = self.task_instances(dag_id, run_id)
        parts = [str({ti["task_id"]: ti["state"] for ti in instances})]
        for ti in instances:
            if ti["state"] != "failed":
                continue
            log = self.task_log(dag_id, run_id, ti["task_id"], max(ti.get("try_number") or 1, 1))
            errors = [
                f"{error.get('exc_type')}: {error.get('exc_value')}"
                for line in log
                if isinstance(line, dict)
                for error in line.get("error_detail") or []
                if isinstance(error, dict)
            ]
            parts.append(
                f"--- {ti['task_id']} failed: "
                + ("; ".join(errors) or "\n".join(format_log(log).splitlines()[-tail:]))
            )
        return "\n".join(parts)

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float = 600.0, poll: float = 2.0
    ) -> dict[str, Any]:
        """Block until the run succeeds or fails; on timeout say which tasks were in which state."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.get_dag_run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{dag_id}/{run_id} still {run['state']} after {timeout:.0f}s: {self.why(dag_id, run_id)}"
                )
            time.sleep(poll)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAirflowClient(_Endpoints):
    """Non-blocking client for event loops: ``await client.list_dags()``."""

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, auth=_JwtAuth(self.base_url, username, password), timeout=timeout
        )

    async def _send(self, call: Call) -> Any:
        try:
            response = await self._http.request(
                call.method, call.path, params=_clean(call.params), json=call.body
            )
        except httpx.TransportError as exc:
            raise AirflowUnreachableError(f"Airflow at {self.base_url} is unreachable: {exc!r}") from exc
        return _decode(self.base_url, call, response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAirflowClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
