"""Reading the inference log back by time window: predictions, labels, and the two joined.

Files are written whole (``conveyor.core.atomic``), so a reader never sees a half-written one; a
file that is not complete Parquet anyway (left by another tool) is skipped with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.core.inference_log.layout import (
    FEEDBACK,
    FEEDBACK_COLUMNS,
    PREDICTION_META_COLUMNS,
    PREDICTIONS,
    SLOTS,
    partition_files,
    utc,
)

log = logging.getLogger(__name__)


def read_log_file(fs: Any, path: str, columns: Sequence[str] | None = None) -> pd.DataFrame | None:
    """One log file as a frame, or ``None`` (logged) when it is not a complete Parquet file.

    Conveyor's writers never leave such a file, but another tool copying into the log, or a file
    that vanished between listing and reading, must cost a reader that file, not its whole run.
    Storage errors still raise: a monitor that cannot read its data must fail, not see no data.
    """
    try:
        with fs.open(path, "rb") as handle:
            return pq.read_table(handle, columns=list(columns) if columns else None).to_pandas()
    except (pa.ArrowInvalid, FileNotFoundError) as exc:
        log.warning("inference log: skipping %s, not a complete Parquet file (%s)", path, exc)
        return None


def _read(
    url: str,
    kind: str,
    start: datetime | str,
    end: datetime | str,
    storage_options: dict | None,
) -> pd.DataFrame:
    start_ts, end_ts = utc(start), utc(end)
    if end_ts <= start_ts:
        raise ValueError(f"empty time window: end {end_ts} is not after start {start_ts}")
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    frames = [read_log_file(fs, path) for path in partition_files(fs, root, kind, start_ts, end_ts)]
    frames = [frame for frame in frames if frame is not None]
    if not frames:
        return pd.DataFrame(
            columns=list(PREDICTION_META_COLUMNS if kind == PREDICTIONS else FEEDBACK_COLUMNS)
        )
    frame = pd.concat(frames, ignore_index=True)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame = frame[(frame["ts"] >= start_ts) & (frame["ts"] < end_ts)]
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def read_predictions(
    url: str,
    start: datetime | str,
    end: datetime | str,
    model_version: str | int | None = None,
    slot: str | None = None,
    deployment: str | None = None,
    storage_options: dict | None = None,
) -> pd.DataFrame:
    """Prediction records with ``start <= ts < end`` (UTC), optionally of one version/slot/deployment."""
    if slot is not None and slot not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}: expected one of {', '.join(SLOTS)}")
    frame = _read(url, PREDICTIONS, start, end, storage_options)
    if model_version is not None:
        frame = frame[frame["model_version"].astype(str) == str(model_version)]
    if slot is not None:
        frame = frame[frame["slot"] == slot]
    if deployment is not None:
        frame = frame[frame["deployment"] == deployment]
    return frame.reset_index(drop=True)


def read_feedback(
    url: str, start: datetime | str, end: datetime | str, storage_options: dict | None = None
) -> pd.DataFrame:
    """Label records (``request_id``, ``ts``, ``label``) received in ``start <= ts < end`` (UTC)."""
    return _read(url, FEEDBACK, start, end, storage_options)


def join_feedback(predictions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Predictions that have a label, with a ``label`` column added.

    Read feedback over a wider window than the predictions: labels arrive after the fact. When
    a request was labelled twice, the latest label wins (a correction replaces the first answer).
    """
    if "request_id" not in predictions.columns:
        raise ValueError("predictions have no 'request_id' column to join labels on")
    missing = {"request_id", "ts", "label"} - set(feedback.columns)
    if missing:
        raise ValueError(f"feedback is missing column(s) {sorted(missing)}")
    latest = (
        feedback.sort_values("ts", kind="stable")
        .drop_duplicates("request_id", keep="last")[["request_id", "ts", "label"]]
        .rename(columns={"ts": "label_ts"})
    )
    joined = predictions.merge(latest, on="request_id", how="inner")
    # Files of class ids and of regression targets may mix: integers stay integers, any
    # fractional label makes the column float, and nothing is truncated.
    labels = pd.to_numeric(joined["label"])
    integral = labels.notna().all() and bool((labels == labels.round()).all())
    joined["label"] = labels.astype("int64") if integral and len(labels) else labels
    return joined
