"""The inference log: every served prediction and every label, as hour-partitioned Parquet.

The gateway appends on its request path, so ``InferenceLogWriter.append_*`` only queues a chunk
in memory; a background thread turns queued chunks into one Parquet file per partition hour.
Drift and performance monitoring read it back by time window. Layout (an fsspec URL, a local
folder by default, so object stores work without code changes)::

    <root>/predictions/date=YYYY-MM-DD/hour=HH/<uuid>.parquet
    <root>/feedback/date=YYYY-MM-DD/hour=HH/<uuid>.parquet

Readers list only the hour folders inside the requested window, so a monthly log does not cost a
full scan to answer "the last hour".
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
SLOTS = ("stable", "canary", "shadow", "staging")
PREDICTION_META_COLUMNS = ("request_id", "ts", "deployment", "slot", "model_name", "model_version")
OUTPUT_COLUMNS = ("delay_probability", "delayed")
FEEDBACK_COLUMNS = ("request_id", "ts", "label")

Chunk = pd.DataFrame | Mapping[str, Sequence[Any] | Any]


def _utc(ts: datetime | str | pd.Timestamp) -> pd.Timestamp:
    """Naive times are taken as UTC: the log is partitioned in UTC, never in local time."""
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _partition_path(root: str, kind: str, hour: pd.Timestamp) -> str:
    return f"{root.rstrip('/')}/{kind}/date={hour:%Y-%m-%d}/hour={hour:%H}"


def _hours(start: pd.Timestamp, end: pd.Timestamp) -> Iterator[pd.Timestamp]:
    hour = start.floor("h")
    while hour < end:
        yield hour
        hour += timedelta(hours=1)


def partition_files(fs: Any, root: str, kind: str, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """Parquet files of ``kind`` in the hour folders that ``[start, end)`` touches, oldest first.

    A listing only, no file is read: cheap enough for a triggerer polling for new rows.
    """
    files: list[str] = []
    for hour in _hours(start, end):
        folder = _partition_path(root, kind, hour)
        if fs.exists(folder):
            files.extend(sorted(fs.glob(f"{folder}/*.parquet")))
    return files


def _is_column(value: Any) -> bool:
    return not isinstance(value, str | bytes) and hasattr(value, "__len__")


def chunk_rows(chunk: Chunk) -> int:
    """Rows in a chunk: its length, or that of its first column-valued entry (scalars broadcast)."""
    if isinstance(chunk, pd.DataFrame):
        return len(chunk)
    lengths = {len(value) for value in chunk.values() if _is_column(value)}
    if len(lengths) != 1:
        raise ValueError(f"a chunk needs columns of one common length, got lengths {sorted(lengths)}")
    return lengths.pop()


def _to_frame(chunk: Chunk, now: pd.Timestamp) -> pd.DataFrame:
    """A chunk as a DataFrame; scalar values (deployment, slot, version...) are broadcast."""
    if isinstance(chunk, pd.DataFrame):
        frame = chunk.copy()
    else:
        frame = pd.DataFrame(dict(chunk), index=pd.RangeIndex(chunk_rows(chunk)))
    if "ts" not in frame.columns:
        frame["ts"] = now
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def _merge(items: list[tuple[Chunk, pd.Timestamp]]) -> pd.DataFrame:
    """All queued chunks as one frame.

    Column mappings (what the gateway appends, one per request) are merged as plain lists into a
    single DataFrame: building one DataFrame per request would hold the GIL long enough at every
    flush to show up in the gateway's tail latency.
    """
    plain = [(c, now) for c, now in items if not isinstance(c, pd.DataFrame) and "ts" not in c]
    frames = [_to_frame(c, now) for c, now in items if isinstance(c, pd.DataFrame) or "ts" in c]
    if plain:
        names = list(dict.fromkeys(name for chunk, _ in plain for name in chunk))
        columns: dict[str, list[Any]] = {name: [] for name in names}
        stamps: list[pd.Timestamp] = []
        for chunk, now in plain:
            rows = chunk_rows(chunk)
            for name in names:
                value = chunk.get(name)
                columns[name].extend(value if _is_column(value) else [value] * rows)
            stamps.extend([now] * rows)
        frames.append(pd.DataFrame({**columns, "ts": pd.to_datetime(stamps, utc=True)}))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def write_partitioned(
    url: str, kind: str, frame: pd.DataFrame, storage_options: dict | None = None
) -> list[str]:
    """Write ``frame`` as one new Parquet file per UTC hour of its ``ts`` column; returns the paths.

    New files only, never appends to an existing one: concurrent writers (several gateway
    workers) can share a root without locking.
    """
    if frame.empty:
        return []
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    frame = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True))
    written = []
    for hour, part in frame.groupby(frame["ts"].dt.floor("h"), sort=True):
        folder = _partition_path(root, kind, hour)
        fs.makedirs(folder, exist_ok=True)
        path = f"{folder}/{uuid.uuid4().hex}.parquet"
        table = pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False)
        with fs.open(path, "wb") as handle:
            pq.write_table(table, handle)
        written.append(path)
    return written


def _read(
    url: str,
    kind: str,
    start: datetime | str,
    end: datetime | str,
    storage_options: dict | None,
) -> pd.DataFrame:
    start_ts, end_ts = _utc(start), _utc(end)
    if end_ts <= start_ts:
        raise ValueError(f"empty time window: end {end_ts} is not after start {start_ts}")
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    frames = []
    for path in partition_files(fs, root, kind, start_ts, end_ts):
        with fs.open(path, "rb") as handle:
            frames.append(pq.read_table(handle).to_pandas())
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
    joined["label"] = joined["label"].astype("int64")
    return joined


class InferenceLogWriter:
    """Batches appended chunks in memory and writes them from a background thread.

    ``append_*`` costs a lock and a list append, so the request path never waits on Parquet or
    the file system. Rows reach storage after at most ``flush_interval_s`` or as soon as
    ``max_rows`` are queued; ``close()`` writes whatever is left. A failed write is logged and
    retried with the next flush instead of crashing the server that serves predictions.
    """

    def __init__(
        self,
        url: str,
        *,
        flush_interval_s: float = 5.0,
        max_rows: int = 10_000,
        storage_options: dict | None = None,
    ) -> None:
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be positive")
        self.url = url
        self.flush_interval_s = flush_interval_s
        self.max_rows = max_rows
        self.storage_options = storage_options
        self._lock = threading.Lock()
        self._queues: dict[str, list[tuple[Chunk, pd.Timestamp]]] = {PREDICTIONS: [], FEEDBACK: []}
        self._queued_rows = 0
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="inference-log-writer", daemon=True)
        self._thread.start()

    def append_predictions(self, chunk: Chunk) -> None:
        """Queue prediction records: a DataFrame or a mapping column -> values (scalars broadcast)."""
        self._append(PREDICTIONS, chunk)

    def append_feedback(self, chunk: Chunk) -> None:
        """Queue labels: columns ``request_id`` and ``label`` (``ts`` defaults to now)."""
        self._append(FEEDBACK, chunk)

    def _append(self, kind: str, chunk: Chunk) -> None:
        if self._stopped.is_set():
            raise RuntimeError("inference log writer is closed")
        rows = chunk_rows(chunk)
        now = pd.Timestamp.now(tz="UTC")
        with self._lock:
            self._queues[kind].append((chunk, now))
            self._queued_rows += rows
            full = self._queued_rows >= self.max_rows
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Write everything queued so far (blocks until written)."""
        with self._write_lock:
            with self._lock:
                queues = {kind: items for kind, items in self._queues.items() if items}
                self._queues = {PREDICTIONS: [], FEEDBACK: []}
                self._queued_rows = 0
            for kind, items in queues.items():
                frame = _merge(items)
                try:
                    write_partitioned(self.url, kind, frame, self.storage_options)
                except Exception:
                    if len(frame) > 10 * self.max_rows:
                        log.exception(
                            "inference log: dropping %d %s rows, storage keeps failing", len(frame), kind
                        )
                        continue
                    log.exception("inference log: writing %d %s rows failed, will retry", len(frame), kind)
                    with self._lock:
                        self._queues[kind].insert(0, (frame, pd.Timestamp.now(tz="UTC")))
                        self._queued_rows += len(frame)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        """Stop the background thread and write what is left."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def __enter__(self) -> InferenceLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
