"""What the inference log survives: a reader racing a fast writer, and a gateway killed with SIGKILL.

The race test is the one that used to fail a full ``make test`` with "Parquet file size is 0
bytes": files were opened at their final name and filled in place. The crash tests run a real
``conveyor serve`` and count every answered row in the log.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from conveyor.core import inference_log as il
from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer
from tests.serving.conftest import ServingModels, records_body


def _window_now() -> tuple[pd.Timestamp, pd.Timestamp]:
    now = pd.Timestamp.now(tz="UTC")
    return now - pd.Timedelta(hours=2), now + pd.Timedelta(hours=1)


def test_a_reader_racing_a_writer_that_flushes_every_10_ms_sees_only_whole_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = str(tmp_path)
    window = _window_now()
    stop = threading.Event()
    appended = 0
    writer = il.InferenceLogWriter(url, flush_interval_s=0.01)

    def append() -> None:
        nonlocal appended
        while not stop.is_set():
            ids = [uuid.uuid4().hex for _ in range(5)]
            writer.append_predictions({"request_id": ids, "hour": [1, 2, 3, 4, 5], "slot": "stable"})
            appended += 5
            time.sleep(0.002)

    appender = threading.Thread(target=append, daemon=True)
    errors: list[str] = []
    seen: list[int] = []
    with caplog.at_level(logging.WARNING, logger=il.__name__):
        appender.start()
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                try:
                    seen.append(len(il.read_predictions(url, *window)))
                except Exception as exc:  # any reader error fails the test below, with its cause
                    errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            stop.set()
            appender.join(10)
            writer.close()
    assert errors == []
    assert [r.getMessage() for r in caplog.records if "skipping" in r.msg] == []  # no partial file seen
    assert len(seen) > 10 and seen == sorted(seen)  # rows only ever appear, never vanish
    frame = il.read_predictions(url, *window)
    assert len(frame) == appended and frame["request_id"].is_unique
    assert list(tmp_path.rglob("*.tmp")) == []


# ---- a real gateway, killed ------------------------------------------------------------------------
@pytest.fixture
def gateway_factory(mlflow_server: MlflowServer, serving_models: ServingModels, tmp_path: Path) -> Iterator:
    started: list[GatewayServer] = []

    def start(name: str, *extra: str) -> GatewayServer:
        server = GatewayServer(
            root=tmp_path / name,
            tracking_uri=mlflow_server.url,
            deployments={"flights": serving_models.good},
            log_url=str(tmp_path / "log"),
            extra_args=list(extra),
        )
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


def _kill(server: GatewayServer) -> float:
    """SIGKILL the whole gateway: no shutdown hook, no final flush. Returns when it was sent."""
    killed = time.monotonic()
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    return killed


class Traffic:
    """Clients sending one-row requests with their own request ids, noting when each 200 arrived."""

    def __init__(self, url: str, bodies: list[bytes], clients: int) -> None:
        self.url, self.bodies = url, bodies
        self.answered: dict[str, float] = {}  # request id -> monotonic time the 200 arrived
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, offset: int) -> None:
        with httpx.Client(timeout=10) as client:
            i = offset
            while not self.stop.is_set():
                request_id = uuid.uuid4().hex
                try:
                    response = client.post(
                        f"{self.url}/invocations",
                        content=self.bodies[i % len(self.bodies)],
                        headers={"content-type": "application/json", "x-request-id": request_id},
                    )
                except httpx.TransportError:  # the gateway was killed under this request
                    return
                if response.status_code == 200:
                    self.answered[request_id] = time.monotonic()
                i += len(self.threads)

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)


def _logged_ids(log_url: str) -> pd.Series:
    return il.read_predictions(log_url, *_window_now(), deployment="flights")["request_id"]


@pytest.mark.integration
def test_durable_mode_logs_every_answered_row_exactly_once_across_a_sigkill(
    gateway_factory, tmp_path: Path, serving_models: ServingModels
) -> None:
    durable = ["--log-durable", "--log-spool", str(tmp_path / "spool"), "--log-flush-interval-s", "0.2"]
    first = gateway_factory("first", *durable)
    bodies = [records_body([row]) for row in serving_models.rows[:50]]
    with Traffic(first.url, bodies, clients=4) as traffic:
        while len(traffic.answered) < 300:
            time.sleep(0.05)
        _kill(first)  # mid-stream: some rows flushed, some only in the spool, some requests in flight
    answered = set(traffic.answered)
    assert list((tmp_path / "spool").glob("segment-*.jsonl")), "the kill left nothing to replay"

    second = gateway_factory("second", *durable)
    deadline = time.monotonic() + 30
    while not answered <= set(_logged_ids(second.inference_log_url)) and time.monotonic() < deadline:
        time.sleep(0.2)
    logged = _logged_ids(second.inference_log_url)
    assert answered - set(logged) == set()  # every answered row, replayed from the spool
    assert logged.is_unique  # and none twice: replaying a stored batch rewrites the same file


@pytest.mark.integration
def test_without_durable_mode_a_sigkill_loses_at_most_the_last_flush_interval(
    gateway_factory, serving_models: ServingModels
) -> None:
    server = gateway_factory("default")  # default flush interval: 1 s
    bodies = [records_body([row]) for row in serving_models.rows[:50]]
    with Traffic(server.url, bodies, clients=2) as traffic:
        time.sleep(3.5)
        metrics = httpx.get(f"{server.url}/metrics").text
        killed = _kill(server)
    written = [
        line for line in metrics.splitlines() if line.startswith("conveyor_inference_log_rows_written_total")
    ]
    assert written and float(written[0].split()[-1]) > 0
    assert (
        "conveyor_inference_log_queue_rows " in metrics
        and "conveyor_inference_log_write_seconds_bucket" in metrics
    )
    logged = set(_logged_ids(server.inference_log_url))
    old = {rid for rid, at in traffic.answered.items() if at < killed - 2.0}  # two flush intervals
    assert len(old) > 50
    assert old - logged == set()
    lost = set(traffic.answered) - logged
    assert all(traffic.answered[rid] >= killed - 2.0 for rid in lost)
