"""The triggerer's row counter on a real local log: it counts whole files and survives broken ones."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from conveyor.core import inference_log
from conveyor.core.drift.window import RowCounter, Window

WINDOW = Window(pd.Timestamp("2013-04-01T10:00Z"), pd.Timestamp("2013-04-01T12:00Z"))


def _log(root: Path, ts: list[str], version: str = "3", slot: str = "stable") -> list[str]:
    frame = pd.DataFrame(
        {
            "request_id": [f"{version}-{slot}-{i}" for i in range(len(ts))],
            "ts": pd.to_datetime(ts, utc=True),
            "slot": slot,
            "model_version": version,
            "temp": [float(i) for i in range(len(ts))],
        }
    )
    return inference_log.write_partitioned(str(root), inference_log.PREDICTIONS, frame)


def test_counts_only_whole_files_and_skips_empty_and_truncated_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (good,) = _log(tmp_path, ["2013-04-01T10:05", "2013-04-01T10:45"])
    _log(tmp_path, ["2013-04-01T09:59"])  # outside the window, and in an hour folder it never lists
    _log(tmp_path, ["2013-04-01T11:00", "2013-04-01T11:30"], version="4", slot="canary")
    _log(tmp_path, ["2013-04-01T12:00"])  # outside the window: end is exclusive
    folder = Path(good).parent
    whole = Path(good).read_bytes()
    (folder / "empty.parquet").write_bytes(b"")  # another tool's crash
    (folder / "torn.parquet").write_bytes(whole[: len(whole) // 2])  # a copy cut short

    with caplog.at_level(logging.WARNING, logger=inference_log.__name__):
        assert RowCounter(str(tmp_path)).count(WINDOW) == 4
        assert RowCounter(str(tmp_path), model_version="4").count(WINDOW) == 2
        assert RowCounter(str(tmp_path), slot="stable").count(WINDOW) == 2
    skipped = {Path(r.args[0]).name for r in caplog.records if "skipping" in r.msg}
    assert skipped == {"empty.parquet", "torn.parquet"}


def test_a_broken_file_that_becomes_whole_is_counted_on_the_next_poll(tmp_path: Path) -> None:
    (good,) = _log(tmp_path, ["2013-04-01T10:05", "2013-04-01T10:10"])
    late = Path(good).parent / "copied.parquet"
    late.write_bytes(b"")  # a copy into the log has started
    counter = RowCounter(str(tmp_path))
    assert counter.count(WINDOW) == 2
    late.write_bytes(Path(good).read_bytes())  # ... and finished
    assert counter.count(WINDOW) == 4
