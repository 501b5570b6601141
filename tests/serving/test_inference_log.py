"""The inference log round-trips through real Parquet files on a local folder and an fsspec memory store."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from conveyor.core import inference_log as il

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
