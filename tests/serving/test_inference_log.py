"""The inference log round-trips through real Parquet files on a local folder and an fsspec memory store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from conveyor.core import inference_log as il
from conveyor.core.inference_log.spool import spool_line
from conveyor.serving.metrics import GatewayMetrics

FEATURES = {
    "carrier": ["UA", "AA", "DL"],
    "origin": ["EWR", "JFK", "LGA"],
    "hour": [5, 9, 23],
    "temp": [30.5, None, 41.0],
}


def _predictions(ts: list[str], version: str = "3", slot: str = "stable") -> dict:
    return {
        **FEATURES,
        "request_id": [uuid.uuid4().hex for _ in ts],
        "ts": pd.to_datetime(ts, utc=True),
        "deployment": "flights",
        "slot": slot,
        "model_name": "flight_delays",
        "model_version": version,
        "delay_probability": [0.1, 0.7, 0.4],
        "delayed": [0, 1, 0],
    }


def test_writer_partitions_by_utc_hour_and_reader_prunes_to_window(tmp_path: Path) -> None:
    with il.InferenceLogWriter(str(tmp_path), flush_interval_s=60) as writer:
        writer.append_predictions(_predictions(["2013-03-01T10:15", "2013-03-01T10:59", "2013-03-01T11:01"]))
    folders = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("predictions/*/*"))
    assert folders == ["predictions/date=2013-03-01/hour=10", "predictions/date=2013-03-01/hour=11"]

    ten = il.read_predictions(str(tmp_path), "2013-03-01T10:00", "2013-03-01T11:00")
    assert list(ten["hour"]) == [5, 9]
    assert ten["model_version"].tolist() == ["3", "3"]
    assert pd.isna(ten["temp"].iloc[1])
    every = il.read_predictions(str(tmp_path), "2013-03-01T00:00", "2013-03-02T00:00")
    assert len(every) == 3 and every["ts"].is_monotonic_increasing


def test_filters_by_version_slot_and_deployment(tmp_path: Path) -> None:
    with il.InferenceLogWriter(str(tmp_path)) as writer:
        writer.append_predictions(_predictions(["2013-05-01T01:00"] * 3, version="3", slot="stable"))
        writer.append_predictions(_predictions(["2013-05-01T01:30"] * 3, version="4", slot="canary"))
    window = ("2013-05-01", "2013-05-02")
    assert len(il.read_predictions(str(tmp_path), *window, model_version=4)) == 3
    assert set(il.read_predictions(str(tmp_path), *window, slot="stable")["model_version"]) == {"3"}
    assert il.read_predictions(str(tmp_path), *window, deployment="other").empty
    with pytest.raises(ValueError, match="unknown slot 'blue'"):
        il.read_predictions(str(tmp_path), *window, slot="blue")
    with pytest.raises(ValueError, match="empty time window"):
        il.read_predictions(str(tmp_path), "2013-05-02", "2013-05-01")


def test_background_thread_flushes_without_close(tmp_path: Path) -> None:
    writer = il.InferenceLogWriter(str(tmp_path), flush_interval_s=0.1)
    try:
        writer.append_predictions(_predictions(["2013-01-01T00:00"] * 3))
        deadline = time.monotonic() + 10
        while not list(tmp_path.glob("predictions/**/*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(il.read_predictions(str(tmp_path), "2013-01-01", "2013-01-02")) == 3
    finally:
        writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.append_predictions(_predictions(["2013-01-01T00:00"] * 3))


def test_feedback_joins_latest_label_by_request_id() -> None:
    url = f"memory://inference-log-{uuid.uuid4().hex}"
    preds = _predictions(["2013-02-01T08:00"] * 3)
    ids = preds["request_id"]
    with il.InferenceLogWriter(url) as writer:
        writer.append_predictions(preds)
        writer.append_feedback(
            {"request_id": [ids[0], ids[1]], "label": [1, 1], "ts": pd.Timestamp("2013-02-01T09:00Z")}
        )
        writer.append_feedback(
            {"request_id": [ids[0]], "label": [0], "ts": pd.Timestamp("2013-02-02T09:00Z")}
        )
    predictions = il.read_predictions(url, "2013-02-01", "2013-02-02")
    feedback = il.read_feedback(url, "2013-02-01", "2013-02-03")
    joined = il.join_feedback(predictions, feedback).set_index("request_id")
    assert sorted(joined.index) == sorted(ids[:2])
    assert joined.loc[ids[0], "label"] == 0  # the correction replaced the first label
    assert joined.loc[ids[1], "label"] == 1
    with pytest.raises(ValueError, match=r"missing column\(s\) \['label'\]"):
        il.join_feedback(predictions, feedback.drop(columns="label"))


def test_the_log_root_exists_from_the_writer_start_before_any_row(tmp_path: Path) -> None:
    """Monitors fail on a root that does not exist (a wrong URL): a gateway that has not flushed yet
    must not look like one."""
    root = tmp_path / "log"
    with il.InferenceLogWriter(str(root), flush_interval_s=60) as writer:
        assert writer.recovered.wait(10)
        assert root.is_dir() and list(root.iterdir()) == []


def test_empty_window_and_ragged_chunks(tmp_path: Path) -> None:
    empty = il.read_predictions(str(tmp_path), "2013-01-01", "2013-01-02")
    assert empty.empty and "model_version" in empty.columns
    with il.InferenceLogWriter(str(tmp_path)) as writer, pytest.raises(ValueError, match="one common length"):
        writer.append_predictions({"request_id": ["a", "b"], "delayed": [1]})


def test_request_chunks_without_timestamps_are_merged_and_stamped(tmp_path: Path) -> None:
    """What the gateway appends: one mapping per request, scalars broadcast, optional columns absent."""
    before = pd.Timestamp.now(tz="UTC")
    with il.InferenceLogWriter(str(tmp_path), flush_interval_s=60) as writer:
        writer.append_predictions({"request_id": ["a"], "hour": [5], "slot": "stable", "delayed": [1]})
        writer.append_predictions(
            {"request_id": ["b-0", "b-1"], "hour": [6, 7], "temp": [1.5, None], "slot": "canary"}
        )
    after = pd.Timestamp.now(tz="UTC")
    frame = il.read_predictions(str(tmp_path), before.floor("h"), after + pd.Timedelta(hours=1))
    frame = frame.set_index("request_id")
    assert frame.loc["a", "slot"] == "stable" and frame.loc["b-1", "slot"] == "canary"
    assert frame["hour"].tolist() == [5, 6, 7]
    assert pd.isna(frame.loc["a", "temp"]) and frame.loc["b-0", "temp"] == 1.5
    assert pd.isna(frame.loc["b-0", "delayed"])
    assert ((frame["ts"] >= before) & (frame["ts"] <= after)).all()
    assert len(list(tmp_path.glob("predictions/**/*.parquet"))) <= 2  # one file per hour touched


# ---- whole files only: readers never see a partial one -------------------------------------------
def _hour_folder(root: Path, ts: str = "2013-01-01T00:00") -> Path:
    hour = pd.Timestamp(ts, tz="UTC")
    return root / "predictions" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"


def test_reader_skips_files_that_are_not_complete_parquet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with il.InferenceLogWriter(str(tmp_path)) as writer:
        writer.append_predictions(_predictions(["2013-01-01T00:10"] * 3))
    folder = _hour_folder(tmp_path)
    (good,) = folder.glob("*.parquet")
    (folder / "empty.parquet").write_bytes(b"")  # what another tool's crash leaves
    (folder / "torn.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (folder / f"{good.name}.0123456789ab.tmp").write_bytes(b"PAR1")  # a writer's temporary
    with caplog.at_level("WARNING", logger=il.__name__):
        frame = il.read_predictions(str(tmp_path), "2013-01-01", "2013-01-02")
    assert len(frame) == 3
    skipped = sorted(Path(r.args[0]).name for r in caplog.records if "skipping" in r.msg)
    assert skipped == ["empty.parquet", "torn.parquet"]


def test_object_store_files_arrive_whole_in_one_put() -> None:
    """fsspec's memory store stands for S3/GCS: no rename there, one PUT per file, no temporaries."""
    url = f"memory://inference-log-{uuid.uuid4().hex}"
    with il.InferenceLogWriter(url) as writer:
        writer.append_predictions(_predictions(["2013-01-01T00:10"] * 3))
    fs, root = fsspec.core.url_to_fs(url)
    files = fs.find(root)
    assert len(files) == 1 and files[0].endswith(".parquet")
    assert len(il.read_predictions(url, "2013-01-01", "2013-01-02")) == 3


def test_writer_removes_the_stale_temporaries_of_a_crashed_writer(tmp_path: Path) -> None:
    folder = _hour_folder(tmp_path)
    folder.mkdir(parents=True)
    stale, live = folder / "a.parquet.000000000000.tmp", folder / "b.parquet.111111111111.tmp"
    stale.write_bytes(b"PAR1 half")
    live.write_bytes(b"PAR1 being written")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    writer = il.InferenceLogWriter(str(tmp_path), flush_interval_s=0.05)
    try:
        deadline = time.monotonic() + 10
        while stale.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not stale.exists()
        assert live.exists()  # young: maybe a live writer's, never touched
    finally:
        writer.close()


# ---- no row lost to one bad row --------------------------------------------------------------------
def _counter(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def metrics() -> GatewayMetrics:
    """The gateway's real Prometheus series, fed by the writer as in the gateway."""
    return GatewayMetrics()


def test_rows_that_cannot_be_encoded_go_to_dead_letter_and_the_rest_is_written(
    tmp_path: Path, metrics: GatewayMetrics
) -> None:
    url = str(tmp_path)
    with il.InferenceLogWriter(url, flush_interval_s=60, events=metrics.inference_log) as writer:
        for i in range(20):
            writer.append_predictions({"request_id": [f"r{i}"], "hour": [i], "slot": "stable"})
        writer.append_predictions({"request_id": ["ten"], "hour": ["ten"], "slot": "stable"})
        writer.append_predictions({"request_id": ["obj"], "hour": [object()], "slot": "stable"})
        writer.append_predictions({"request_id": ["r20", "r21"], "hour": [20, 21], "slot": "stable"})
        writer.flush()
        writer.append_predictions({"request_id": ["later"], "hour": [5], "slot": "stable"})
    now = pd.Timestamp.now(tz="UTC")
    frame = il.read_predictions(url, now - pd.Timedelta(hours=2), now + pd.Timedelta(hours=1))
    assert sorted(frame["request_id"]) == sorted([f"r{i}" for i in range(22)] + ["later"])
    assert frame["hour"].dtype == "int64"  # the odd string did not turn the column into text
    dead = il.read_dead_letter(url)
    assert sorted(entry["row"]["request_id"] for entry in dead) == ["obj", "ten"]
    by_id = {entry["row"]["request_id"]: entry for entry in dead}
    assert "'ten'" in by_id["ten"]["reason"] and "int64" in by_id["ten"]["reason"]
    assert by_id["obj"]["row"]["hour"].startswith("<object object at")  # repr, still valid JSON
    assert _counter(metrics, "conveyor_inference_log_rows_written_total", kind="predictions") == 23
    assert (
        _counter(metrics, "conveyor_inference_log_rows_failed_total", kind="predictions", cause="encode") == 2
    )
    assert _counter(metrics, "conveyor_inference_log_write_seconds_count", kind="predictions") == 2


def test_a_chunk_with_unusable_timestamps_costs_only_its_rows(tmp_path: Path) -> None:
    with il.InferenceLogWriter(str(tmp_path), flush_interval_s=60) as writer:
        writer.append_predictions(_predictions(["2013-01-01T00:10"] * 3))
        writer.append_predictions({"request_id": ["bad"], "ts": ["not a time"], "hour": [1]})
    assert len(il.read_predictions(str(tmp_path), "2013-01-01", "2013-01-02")) == 3
    (dead,) = il.read_dead_letter(str(tmp_path))
    assert dead["row"]["request_id"] == "bad" and "unusable chunk" in dead["reason"]


class FlakyStore(MemoryFileSystem):
    """An object store whose PUTs fail ``failures`` times (what a storage hiccup looks like)."""

    protocol = "flakymem"
    failures = 0

    def pipe_file(self, path: str, value: bytes, **kwargs: object) -> None:
        if FlakyStore.failures > 0:
            FlakyStore.failures -= 1
            raise OSError("503 Slow Down")
        super().pipe_file(path, value, **kwargs)


@pytest.fixture
def flaky() -> Iterator[str]:
    fsspec.register_implementation("flakymem", FlakyStore, clobber=True)
    FlakyStore.failures = 0
    yield f"flakymem://log-{uuid.uuid4().hex}"
    FlakyStore.failures = 0


def test_transient_storage_errors_are_retried(flaky: str, metrics: GatewayMetrics) -> None:
    FlakyStore.failures = il.InferenceLogWriter.WRITE_ATTEMPTS - 1
    with il.InferenceLogWriter(flaky, flush_interval_s=60, events=metrics.inference_log) as writer:
        writer.append_predictions(_predictions(["2013-01-01T00:10"] * 3))
    assert len(il.read_predictions(flaky, "2013-01-01", "2013-01-02")) == 3
    assert il.read_dead_letter(flaky) == []


def test_storage_that_keeps_failing_costs_a_bounded_time_and_is_counted(
    flaky: str, metrics: GatewayMetrics
) -> None:
    attempts = il.InferenceLogWriter.WRITE_ATTEMPTS
    FlakyStore.failures = attempts  # the log write gives up; the dead-letter write then succeeds
    with il.InferenceLogWriter(flaky, flush_interval_s=60, events=metrics.inference_log) as writer:
        writer.append_predictions(_predictions(["2013-01-01T00:10"] * 3))
        started = time.monotonic()
        writer.flush()
        assert time.monotonic() - started < 5
        FlakyStore.failures = 2 * attempts  # now neither the log nor the dead-letter file can be written
        writer.append_predictions(_predictions(["2013-01-01T00:20"] * 3))
        writer.flush()
        writer.append_predictions(_predictions(["2013-01-01T00:30"] * 3))  # storage is back
    assert len(il.read_predictions(flaky, "2013-01-01", "2013-01-02")) == 3
    dead = il.read_dead_letter(flaky)
    assert len(dead) == 3 and all(entry["reason"].startswith("storage: OSError") for entry in dead)
    assert (
        _counter(metrics, "conveyor_inference_log_rows_failed_total", kind="predictions", cause="storage")
        == 3
    )
    assert (
        _counter(metrics, "conveyor_inference_log_rows_dropped_total", kind="predictions", cause="storage")
        == 3
    )


def test_a_full_queue_drops_new_rows_and_counts_them(tmp_path: Path, metrics: GatewayMetrics) -> None:
    writer = il.InferenceLogWriter(
        str(tmp_path), flush_interval_s=60, max_rows=5, max_queued_rows=5, events=metrics.inference_log
    )
    metrics.inference_log.track_queue(lambda: writer.queued_rows)
    try:
        writer.recovered.wait(10)  # the start-up pass flushes too: after it the queue is ours alone
        writer.append_predictions({"request_id": ["a", "b", "c"], "hour": [1, 2, 3]})
        assert _counter(metrics, "conveyor_inference_log_queue_rows") == 3
        started = time.perf_counter()
        writer.append_predictions({"request_id": ["d", "e", "f"], "hour": [4, 5, 6]})
        assert time.perf_counter() - started < 0.05  # dropped at once, the caller never waits
        assert (
            _counter(
                metrics, "conveyor_inference_log_rows_dropped_total", kind="predictions", cause="queue_full"
            )
            == 3
        )
    finally:
        writer.close()
    now = pd.Timestamp.now(tz="UTC")
    frame = il.read_predictions(str(tmp_path), now - pd.Timedelta(hours=2), now + pd.Timedelta(hours=1))
    assert sorted(frame["request_id"]) == ["a", "b", "c"]


# ---- durable mode: the spool -------------------------------------------------------------------
CRASHING_WRITER = """
import os, signal, sys
from conveyor.core import inference_log as il
writer = il.InferenceLogWriter(sys.argv[1], flush_interval_s=3600, spool_dir=sys.argv[2])
writer.recovered.wait(10)
for i in range(50):
    writer.append_predictions({"request_id": [f"r{i}"], "hour": [i], "slot": "stable"})
os.kill(os.getpid(), signal.SIGKILL)
"""


def _all_predictions(url: str) -> pd.DataFrame:
    now = pd.Timestamp.now(tz="UTC")
    return il.read_predictions(url, now - pd.Timedelta(hours=2), now + pd.Timedelta(hours=1))


def test_spooled_rows_survive_a_sigkill_and_are_replayed_once(tmp_path: Path) -> None:
    url, spool = str(tmp_path / "log"), tmp_path / "spool"
    child = subprocess.run([sys.executable, "-c", CRASHING_WRITER, url, str(spool)], capture_output=True)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert _all_predictions(url).empty  # nothing was flushed: the rows exist only in the spool
    with il.InferenceLogWriter(url, spool_dir=spool) as writer:
        assert writer.recovered.wait(30)
        frame = _all_predictions(url)
    assert sorted(frame["request_id"]) == sorted(f"r{i}" for i in range(50))
    assert frame["hour"].tolist() == list(range(50))
    assert list(spool.glob("segment-*")) == []


def test_replaying_a_segment_already_stored_adds_no_duplicates(tmp_path: Path) -> None:
    """A crash between storing a batch and deleting its segment: the replay overwrites, never adds."""
    url, spool = str(tmp_path / "log"), tmp_path / "spool"
    with il.InferenceLogWriter(url, flush_interval_s=3600, spool_dir=spool) as writer:
        writer.recovered.wait(10)
        writer.append_predictions({"request_id": ["a", "b"], "hour": [1, 2], "slot": "stable"})
        (segment,) = spool.glob("segment-*")
        content = segment.read_bytes()
        writer.flush()
        assert not segment.exists() and len(_all_predictions(url)) == 2
    segment.write_bytes(content)  # as if the writer died right before deleting it
    with il.InferenceLogWriter(url, spool_dir=spool) as writer:
        assert writer.recovered.wait(30)
    assert sorted(_all_predictions(url)["request_id"]) == ["a", "b"]
    assert not segment.exists()


def test_a_torn_spool_line_is_dead_lettered_not_lost_silently(tmp_path: Path) -> None:
    url, spool = str(tmp_path / "log"), tmp_path / "spool"
    spool.mkdir()
    (spool / "segment-00000000000000000001-deadbeef.jsonl").write_bytes(
        spool_line("predictions", {"request_id": ["ok"], "hour": [1]}, pd.Timestamp.now(tz="UTC"))
        + b'{"kind": "predictions", "now": "2024-'
    )
    with il.InferenceLogWriter(url, spool_dir=spool) as writer:
        assert writer.recovered.wait(30)
    assert _all_predictions(url)["request_id"].tolist() == ["ok"]
    (dead,) = il.read_dead_letter(url, "spool")
    assert dead["reason"].startswith("unreadable spool line 2") and dead["row"]["spool_line"].startswith(
        '{"kind"'
    )


def test_a_spool_serves_one_writer_only(tmp_path: Path) -> None:
    with (
        il.InferenceLogWriter(str(tmp_path / "log"), spool_dir=tmp_path / "spool"),
        pytest.raises(RuntimeError, match="in use by another writer"),
    ):
        il.InferenceLogWriter(str(tmp_path / "log"), spool_dir=tmp_path / "spool")


def test_writer_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_queued_rows"):
        il.InferenceLogWriter(str(tmp_path), max_rows=10, max_queued_rows=5)
    with pytest.raises(ValueError, match="spool_dir"):
        il.InferenceLogWriter(str(tmp_path), fsync=True)
