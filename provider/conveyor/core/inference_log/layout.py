"""Where the inference log keeps its files: hour partitions in UTC, and how to list a window's.

Readers list only the hour folders inside the requested window, so a monthly log does not cost a
full scan to answer "the last hour".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
KINDS = (PREDICTIONS, FEEDBACK)
DEAD_LETTER = "dead_letter"
SLOTS = ("stable", "canary", "shadow", "staging")
PREDICTION_META_COLUMNS = ("request_id", "ts", "deployment", "slot", "model_name", "model_version")
FEEDBACK_COLUMNS = ("request_id", "ts", "label")
# An empty object the writer puts at the root where making a folder makes nothing (object stores
# have no empty folders), so a monitor finds the root of a gateway that has not logged yet.
ROOT_MARKER = "_conveyor_inference_log"


def utc(ts: datetime | str | pd.Timestamp) -> pd.Timestamp:
    """Naive times are taken as UTC: the log is partitioned in UTC, never in local time."""
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def partition_path(root: str, kind: str, hour: pd.Timestamp) -> str:
    return f"{root.rstrip('/')}/{kind}/date={hour:%Y-%m-%d}/hour={hour:%H}"


def dead_letter_folder(root: str, kind: str) -> str:
    return f"{root.rstrip('/')}/{DEAD_LETTER}/{kind}"


def _hours(start: pd.Timestamp, end: pd.Timestamp) -> Iterator[pd.Timestamp]:
    hour = start.floor("h")
    while hour < end:
        yield hour
        hour += timedelta(hours=1)


def hour_parts(frame: pd.DataFrame) -> Iterator[tuple[pd.Timestamp, pd.DataFrame]]:
    """``frame`` split by the UTC hour of its ``ts`` column (one file per hour), oldest first."""
    if frame.empty:
        return
    frame = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True))
    yield from frame.groupby(frame["ts"].dt.floor("h"), sort=True)


def partition_files(fs: Any, root: str, kind: str, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """Parquet files of ``kind`` in the hour folders that ``[start, end)`` touches, oldest first.

    A listing only, no file is read: cheap enough for a triggerer polling for new rows. Writers'
    temporaries (``*.parquet.<random>.tmp``) never match. Every call asks the storage: object-store
    file systems (s3fs, gcsfs, adlfs) otherwise answer from a listing cached for the life of the
    process, and a polling monitor would never see the files other processes write later.
    """
    files: list[str] = []
    for hour in _hours(start, end):
        folder = partition_path(root, kind, hour)
        fs.invalidate_cache(folder)
        if fs.exists(folder):
            files.extend(sorted(fs.glob(f"{folder}/*.parquet")))
    return files
