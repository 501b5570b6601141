"""Replay recorded rows (real flights) through a gateway as live traffic, and their labels later.

Unlike ``conveyor.local.loadgen``, which hammers a server with a few bodies as fast as it can,
a replay sends each recorded row once, in the order it happened, at a steady pace, under a
request id it chose (``x-request-id``, echoed by the gateway) and then, ``feedback_delay_s``
later, posts the row's true label to ``/feedback`` under the same id — the way a flight's
arrival delay becomes known after the prediction was made. That is what drift and performance
monitoring and the canary's online-accuracy check read, so the demo's traffic exercises them
exactly as production traffic would.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

if TYPE_CHECKING:
    import pandas as pd


class ReplayError(RuntimeError):
    """The replay could not run at all (bad rows, gateway unreachable from the start)."""


@dataclass
class ReplayStats:
    """What the replay did so far; ``by_version`` counts answered rows per ``v<version>/<slot>``."""

    sent: int = 0
    answered: int = 0
    failed: int = 0
    by_version: Counter = field(default_factory=Counter)
    feedback_sent: int = 0
    feedback_matched: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def copy(self) -> ReplayStats:
        return ReplayStats(
            self.sent,
            self.answered,
            self.failed,
            Counter(self.by_version),
            self.feedback_sent,
            self.feedback_matched,
            list(self.errors),
            self.started,
        )

    def summary(self) -> str:
        versions = ", ".join(f"{k} {n}" for k, n in sorted(self.by_version.items())) or "none"
        return (
            f"{self.answered}/{self.sent} rows answered ({self.failed} failed) in "
            f"{time.monotonic() - self.started:.0f}s; by version: {versions}; "
            f"labels sent {self.feedback_sent} (matched {self.feedback_matched})"
        )


def _json_value(value: Any) -> Any:
    """NaN (missing weather) becomes JSON null; numpy scalars become plain numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def request_bodies(rows: pd.DataFrame, features: Sequence[str]) -> list[bytes]:
    """One MLflow ``dataframe_split`` body per row, features in the given order."""
    missing = [c for c in features if c not in rows.columns]
    if missing:
        raise ReplayError(f"rows lack feature column(s) {missing}; they have {list(rows.columns)}")
    if rows.empty:
        raise ReplayError("nothing to replay: the rows are empty")
    columns = list(features)
    return [
        json.dumps(
            {"dataframe_split": {"columns": columns, "data": [[_json_value(v) for v in values]]}}
        ).encode()
        for values in rows[columns].itertuples(index=False, name=None)
    ]


class Replay:
    """Send ``rows`` to ``gateway_url`` at ``rate`` rows per second, then their labels.

    :param rows: the recorded rows in the order to replay them (e.g. sorted by departure time).
    :param features: the columns that form a request.
    :param label: column holding the true label, posted as feedback; ``None`` sends no feedback.
    :param deployment: gateway deployment; ``None`` uses the gateway's default one.
    :param rate: rows per second (the pace of traffic, not a benchmark).
    :param feedback_delay_s: how long after its answer a row's label is posted.
    :param repeat: start over when the rows run out (keeps traffic flowing for a long demo);
        each pass uses new request ids.
    """

    def __init__(
        self,
        gateway_url: str,
        rows: pd.DataFrame,
        *,
        features: Sequence[str],
        label: str | None = None,
        deployment: str | None = None,
        rate: float = 50.0,
        concurrency: int = 4,
        feedback_delay_s: float = 5.0,
        repeat: bool = False,
        timeout_s: float = 30.0,
    ) -> None:
        if rate <= 0 or concurrency < 1:
            raise ReplayError(
                f"rate must be > 0 and concurrency >= 1, got rate={rate}, concurrency={concurrency}"
            )
        if label is not None and label not in rows.columns:
            raise ReplayError(f"rows have no label column {label!r}")
        self.url = gateway_url.rstrip("/")
        self.bodies = request_bodies(rows, features)
        self.labels = [int(v) for v in rows[label]] if label is not None else None
        self.path = (
            "/invocations" if deployment is None else f"/deployments/{quote(deployment, safe='')}/invocations"
        )
        self.rate = rate
        self.concurrency = concurrency
        self.feedback_delay_s = feedback_delay_s
        self.repeat = repeat
        self.timeout_s = timeout_s
        self.prefix = f"replay-{uuid.uuid4().hex[:8]}"
        self._stats = ReplayStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def stats(self) -> ReplayStats:
        """A consistent snapshot, safe to read while the replay runs in the background."""
        with self._lock:
            return self._stats.copy()

    def request_id(self, index: int) -> str:
        """``<prefix>-<pass>-<row>`` for the ``index``-th request: unique per pass over the rows, so
        labels of a repeated row never land on an earlier prediction."""
        return f"{self.prefix}-{index // len(self.bodies)}-{index % len(self.bodies)}"

    # ---- blocking and background use -----------------------------------------------------------
    def run(self, limit: int | None = None) -> ReplayStats:
        """Replay until the rows run out (or ``limit`` requests, or ``stop()``); labels flushed at the end."""
        asyncio.run(self._run(limit))
        return self.stats

    def start(self) -> Replay:
        self._thread = threading.Thread(target=self._background, name="replay", daemon=True)
        self._thread.start()
        return self

    def _background(self) -> None:
        try:
            asyncio.run(self._run(None))
        except BaseException as exc:  # surfaced by stop()
            self._error = exc

    def stop(self) -> ReplayStats:
        """Stop sending, post the labels still owed, and return the final stats."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 30)
        if self._error is not None:
            raise self._error
        return self.stats

    def wait_for(self, answered: int, timeout: float = 60.0) -> ReplayStats:
        """Block until ``answered`` rows were answered (the traffic really flows)."""
        deadline = time.monotonic() + timeout
        while (stats := self.stats).answered < answered:
            if self._error is not None:
                raise ReplayError(f"replay stopped: {self._error}") from self._error
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {stats.answered} of {answered} rows answered; {stats.errors[:3]}")
            time.sleep(0.1)
        return stats

    def __enter__(self) -> Replay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the traffic ---------------------------------------------------------------------------
    async def _run(self, limit: int | None) -> None:
        total = limit if limit is not None else (None if self.repeat else len(self.bodies))
        counter = iter(range(total) if total is not None else range(1 << 62))
        owed: deque[tuple[float, str, int]] = deque()  # (due time, request id, label)
        started = time.monotonic()
        limits = httpx.Limits(max_connections=self.concurrency + 1)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=self.timeout_s) as http:
            try:
                await http.get("/health")
            except httpx.TransportError as exc:
                raise ReplayError(f"gateway at {self.url} is unreachable: {exc}") from exc
            senders = [self._sender(http, counter, started, owed) for _ in range(self.concurrency)]
            feedback = asyncio.create_task(self._feedback_loop(http, owed))
            try:
                await asyncio.gather(*senders)
            finally:
                feedback.cancel()
                await asyncio.gather(feedback, return_exceptions=True)
                await self._post_feedback(http, owed, flush=True)

    async def _sender(self, http: httpx.AsyncClient, counter: Any, started: float, owed: deque) -> None:
        for index in counter:
            if self._stop.is_set():
                return
            # Row ``index`` is due at ``index / rate``; a gateway that falls behind is not flooded.
            delay = started + index / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            row = index % len(self.bodies)
            request_id = self.request_id(index)
            with self._lock:
                self._stats.sent += 1
            try:
                response = await http.post(
                    self.path,
                    content=self.bodies[row],
                    headers={"content-type": "application/json", "x-request-id": request_id},
                )
            except httpx.HTTPError as exc:
                self._failed(f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code != 200:
                self._failed(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            version = f"v{response.headers.get('x-model-version')}/{response.headers.get('x-model-slot')}"
            with self._lock:
                self._stats.answered += 1
                self._stats.by_version[version] += 1
            if self.labels is not None:
                owed.append((time.monotonic() + self.feedback_delay_s, request_id, self.labels[row]))

    def _failed(self, message: str) -> None:
        with self._lock:
            self._stats.failed += 1
            if len(self._stats.errors) < 20:
                self._stats.errors.append(message)

    async def _feedback_loop(self, http: httpx.AsyncClient, owed: deque) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._post_feedback(http, owed, flush=False)

    async def _post_feedback(self, http: httpx.AsyncClient, owed: deque, flush: bool) -> None:
        """Post the labels that are due (all of them with ``flush``), in batches of 500."""
        now = time.monotonic()
        due = []
        while owed and (flush or owed[0][0] <= now) and len(due) < 500:
            _, request_id, label = owed.popleft()
            due.append({"request_id": request_id, "label": label})
        if not due:
            return
        try:
            response = await http.post("/feedback", json={"feedback": due})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self._failed(f"feedback: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            self._stats.feedback_sent += len(due)
            self._stats.feedback_matched += int(response.json().get("matched", 0))
        if flush and owed:
            await self._post_feedback(http, owed, flush=True)
