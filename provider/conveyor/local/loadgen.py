"""A small asyncio load generator (httpx, keep-alive) that records every response it gets.

Unlike ``wrk`` it keeps per-request outcomes (which version and slot answered, when), which is
what rollback timing, zero-failure checks and canary demos need; throughput benchmarks use
``wrk`` instead, whose C client does not compete with the server for the CPU as much.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Outcome:
    sent: float  # time.monotonic() when the request was sent
    latency_s: float
    status: int  # 0: no HTTP answer (connection error, timeout)
    version: str | None
    slot: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


async def run_load(
    url: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    path: str = "/invocations",
    headers: dict[str, str] | None = None,
    key_header: str | None = None,
    sink: list[Outcome] | None = None,
) -> list[Outcome]:
    """``concurrency`` clients, each sending the next body as soon as it got an answer.

    Runs for ``duration_s`` or until ``stop`` is set. With ``key_header``, each request carries
    a distinct routing key (so sticky canary routing spreads requests like distinct users).
    Outcomes are appended to ``sink`` as they arrive, for callers that watch the load live.
    """
    if duration_s is None and stop is None:
        raise ValueError("give duration_s or stop, or the load never ends")
    deadline = time.monotonic() + duration_s if duration_s is not None else float("inf")
    outcomes: list[Outcome] = sink if sink is not None else []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    base_headers = {"content-type": "application/json", **(headers or {})}
    counter = iter(range(1 << 62))

    async def client(http: httpx.AsyncClient, worker: int) -> None:
        i = worker
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            body = bodies[i % len(bodies)]
            i += concurrency
            request_headers = base_headers
            if key_header:
                request_headers = {**base_headers, key_header: f"user-{next(counter)}"}
            sent = time.monotonic()
            try:
                response = await http.post(path, content=body, headers=request_headers)
            except httpx.HTTPError as exc:
                outcomes.append(
                    Outcome(sent, time.monotonic() - sent, 0, None, None, f"{type(exc).__name__}: {exc}")
                )
                continue
            outcomes.append(
                Outcome(
                    sent,
                    time.monotonic() - sent,
                    response.status_code,
                    response.headers.get("x-model-version"),
                    response.headers.get("x-model-slot"),
                    None if response.status_code == 200 else response.text[:300],
                )
            )

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as http:
        await asyncio.gather(*(client(http, w) for w in range(concurrency)))
    outcomes.sort(key=lambda o: o.sent)
    return outcomes


class BackgroundLoad:
    """Load in a background thread for the length of a ``with`` block; ``outcomes`` after it."""

    def __init__(self, url: str, bodies: Sequence[bytes], concurrency: int = 4, **kwargs) -> None:
        self._stop = threading.Event()
        self._args = (url, bodies)
        self._kwargs = {"concurrency": concurrency, **kwargs}
        self.outcomes: list[Outcome] = []
        self._thread = threading.Thread(target=self._run, name="background-load", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(run_load(*self._args, stop=self._stop, sink=self.outcomes, **self._kwargs))
        except BaseException as exc:  # surfaced in __exit__
            self._error = exc

    def wait_for(self, requests: int, timeout: float = 60.0) -> None:
        """Block until at least ``requests`` answers arrived (the load really is running)."""
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < requests:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise TimeoutError(f"only {len(self.outcomes)} of {requests} requests answered")
            time.sleep(0.05)

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self._error is not None:
            raise self._error
