"""The inference log: every served prediction and every label, as hour-partitioned Parquet.

The gateway appends on its request path, so ``InferenceLogWriter.append_*`` only queues a chunk
in memory; a background thread turns queued chunks into one Parquet file per partition hour.
Drift and performance monitoring read it back by time window. Layout (an fsspec URL, a local
folder by default, so object stores work without code changes)::

    <root>/predictions/date=YYYY-MM-DD/hour=HH/<batch>.parquet
    <root>/feedback/date=YYYY-MM-DD/hour=HH/<batch>.parquet
    <root>/dead_letter/<kind>/<batch>.jsonl      rows the log could not take, with the reason

Readers list only the hour folders inside the requested window, so a monthly log does not cost a
full scan to answer "the last hour". Files are written whole (``conveyor.core.atomic``: a
temporary renamed into place, one PUT on object stores), so a reader never sees a half-written
one; a file that is not complete Parquet anyway (left by another tool) is skipped with a warning.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.core.atomic import fs_write_bytes, remove_stale_temporaries

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
KINDS = (PREDICTIONS, FEEDBACK)
DEAD_LETTER = "dead_letter"
SLOTS = ("stable", "canary", "shadow", "staging")
PREDICTION_META_COLUMNS = ("request_id", "ts", "deployment", "slot", "model_name", "model_version")
OUTPUT_COLUMNS = ("delay_probability", "delayed")
FEEDBACK_COLUMNS = ("request_id", "ts", "label")
MAX_REPR_CHARS = 2000  # a dead-letter line shows the offending value, not megabytes of it

Chunk = pd.DataFrame | Mapping[str, Sequence[Any] | Any]
DeadRow = tuple[dict[str, Any], str]  # the row as the writer saw it, why it could not be written


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

    A listing only, no file is read: cheap enough for a triggerer polling for new rows. Writers'
    temporaries (``*.parquet.<random>.tmp``) never match.
    """
    files: list[str] = []
    for hour in _hours(start, end):
        folder = _partition_path(root, kind, hour)
        if fs.exists(folder):
            files.extend(sorted(fs.glob(f"{folder}/*.parquet")))
    return files


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


def _chunk_records(chunk: Chunk) -> list[dict[str, Any]]:
    """A chunk's rows as dicts, for the dead-letter file when the chunk itself is unusable."""
    if isinstance(chunk, pd.DataFrame):
        return chunk.to_dict("records")
    try:
        rows = chunk_rows(chunk)
    except (ValueError, TypeError):
        return [dict(chunk)]
    return [{k: v[i] if _is_column(v) else v for k, v in chunk.items()} for i in range(rows)]


def _merge(items: list[tuple[Chunk, pd.Timestamp]]) -> tuple[pd.DataFrame, list[DeadRow]]:
    """All queued chunks as one frame, and the rows of chunks that cannot become one.

    Column mappings (what the gateway appends, one per request) are merged as plain lists into a
    single DataFrame: building one DataFrame per request would hold the GIL long enough at every
    flush to show up in the gateway's tail latency.
    """
    plain = [(c, now) for c, now in items if not isinstance(c, pd.DataFrame) and "ts" not in c]
    frames, dead = [], []
    for chunk, now in items:
        if isinstance(chunk, pd.DataFrame) or "ts" in chunk:
            try:
                frames.append(_to_frame(chunk, now))
            except Exception as exc:  # e.g. a 'ts' that is no time: only this chunk is lost
                reason = f"unusable chunk: {type(exc).__name__}: {exc}"
                dead.extend((row, reason) for row in _chunk_records(chunk))
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
    if not frames:
        return pd.DataFrame(), dead
    return (frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)), dead


# ---- encoding: Parquet bytes, and the rows that cannot be part of them ---------------------------
def _table(part: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    return pa.Table.from_pandas(part.reset_index(drop=True), schema=schema, preserve_index=False)


def _parquet_bytes(table: pa.Table) -> bytes:
    """The whole file in memory, so storage gets it in one write (rename or PUT), never in pieces."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _bisect(part: pd.DataFrame, schema: pa.Schema | None) -> tuple[list[pa.Table], dict[Any, str]]:
    """Split ``part`` until every piece encodes (to ``schema`` if given) or is one bad row.

    k bad rows among n cost O(k log n) encodings; a clean part costs one.
    """
    try:
        table = _table(part, schema)
        _parquet_bytes(table)
        return [table], {}
    except Exception as exc:  # anything encoding raises is about the data: in memory, no I/O
        if len(part) == 1:
            return [], {part.index[0]: f"cannot encode: {type(exc).__name__}: {exc}"}
    middle = len(part) // 2
    left_tables, left_dead = _bisect(part.iloc[:middle], schema)
    right_tables, right_dead = _bisect(part.iloc[middle:], schema)
    return left_tables + right_tables, {**left_dead, **right_dead}


def _common_schema(tables: list[pa.Table]) -> pa.Schema:
    """One type per column for the pieces of a split batch: promoted where Arrow can (null or int
    with float), else the type most rows have, so a single odd row does not set a column's type."""
    fields = []
    for name in tables[0].schema.names:
        typed = [(t.schema.field(name).type, t.num_rows) for t in tables]
        try:
            unified = pa.unify_schemas(
                [pa.schema([(name, kind)]) for kind, _ in typed], promote_options="permissive"
            )
            fields.append(unified.field(name))
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            rows: Counter[pa.DataType] = Counter()
            for kind, count in typed:
                rows[kind] += count
            fields.append(pa.field(name, rows.most_common(1)[0][0]))
    return pa.schema(fields)


def encode(part: pd.DataFrame) -> tuple[bytes | None, dict[Any, str]]:
    """``part`` as Parquet bytes, minus the rows that cannot be encoded (index label -> reason).

    A batch mixes many requests; one value pyarrow cannot encode (an object it does not know, a
    string among integers) must cost that row, not the batch and not every later one. The first
    split finds pieces that encode on their own; the second encodes every row to the type the
    pieces agree on, so the good rows land in one file with one schema.
    """
    try:
        return _parquet_bytes(_table(part)), {}
    except Exception:  # the split below finds and names the bad rows
        pieces, dead = _bisect(part, None)
    if not pieces:
        return None, dead
    pieces, dead = _bisect(part, _common_schema(pieces))
    return (_parquet_bytes(pa.concat_tables(pieces)) if pieces else None), dead


def _hour_parts(frame: pd.DataFrame) -> Iterator[tuple[pd.Timestamp, pd.DataFrame]]:
    if frame.empty:
        return
    frame = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True))
    yield from frame.groupby(frame["ts"].dt.floor("h"), sort=True)


def write_partitioned(
    url: str, kind: str, frame: pd.DataFrame, storage_options: dict | None = None
) -> list[str]:
    """Write ``frame`` as one new Parquet file per UTC hour of its ``ts`` column; returns the paths.

    New files only, never appends to an existing one: concurrent writers (several gateway
    workers) can share a root without locking. Each file is written whole (atomic rename, or one
    PUT on object stores). Strict: a value that cannot be encoded raises; the gateway's writer
    uses ``encode`` instead, which sets such rows aside.
    """
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    written = []
    for hour, part in _hour_parts(frame):
        folder = _partition_path(root, kind, hour)
        fs.makedirs(folder, exist_ok=True)
        path = f"{folder}/{uuid.uuid4().hex}.parquet"
        fs_write_bytes(fs, path, _parquet_bytes(_table(part)))
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
    joined["label"] = joined["label"].astype("int64")
    return joined


def read_dead_letter(url: str, kind: str = PREDICTIONS, storage_options: dict | None = None) -> list[dict]:
    """Every dead-letter entry of ``kind`` (``reason``, ``row``, ``batch``), oldest file first."""
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    folder = f"{root.rstrip('/')}/{DEAD_LETTER}/{kind}"
    if not fs.exists(folder):
        return []
    entries = []
    for path in sorted(fs.glob(f"{folder}/*.jsonl")):
        with fs.open(path, "rb") as handle:
            entries.extend(json.loads(line) for line in handle.read().splitlines() if line)
    return entries


# ---- JSON for the spool and the dead-letter files ------------------------------------------------
def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a hostile object's __repr__ must not take the writer down
        text = f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= MAX_REPR_CHARS else text[:MAX_REPR_CHARS] + "...(truncated)"


def _jsonable(value: Any) -> Any:
    """``json.dumps``'s fallback: numpy and time values as themselves, anything else as its repr."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    return _short_repr(value)


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Strict JSON (no NaN tokens, bounded size) for a dead-letter row: whatever the row held."""
    if isinstance(value, np.generic | np.ndarray):
        value = _jsonable(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_REPR_CHARS else value[:MAX_REPR_CHARS] + "...(truncated)"
    if depth < 8 and isinstance(value, Mapping):
        return {
            _short_repr(k) if not isinstance(k, str) else k: _json_safe(v, depth + 1)
            for k, v in value.items()
        }
    if depth < 8 and isinstance(value, list | tuple):
        return [_json_safe(v, depth + 1) for v in value[:1000]]
    return _jsonable(value) if isinstance(value, datetime) else _short_repr(value)


def _dead_letter_bytes(kind: str, batch: str, rows: list[DeadRow]) -> bytes:
    lines = [
        json.dumps({"kind": kind, "batch": batch, "reason": reason, "row": _json_safe(row)}, allow_nan=False)
        for row, reason in rows
    ]
    return ("\n".join(lines) + "\n").encode()


# ---- the durable spool ---------------------------------------------------------------------------
class _Spool:
    """Append-only JSON-lines segments in a local folder: rows answered but not yet in the log.

    One segment per flush: the writer seals the current segment when it takes its snapshot of the
    queue (both under one lock, so a segment holds exactly one batch) and deletes it once that
    batch is stored. Output files are named after the segment, so replaying a segment whose batch
    was stored just before a crash overwrites the same files instead of adding duplicates.
    """

    def __init__(self, folder: str | Path, fsync: bool) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._lock_file = open(self.folder / ".lock", "a+")  # noqa: SIM115 - held while the writer lives
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise RuntimeError(
                f"inference log spool {self.folder} is in use by another writer: give each gateway its own"
            ) from None
        self.leftovers = sorted(self.folder.glob("segment-*.jsonl"))
        self._open()

    def _open(self) -> None:
        self.current = self.folder / f"segment-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
        self._fd = os.open(self.current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._bytes = 0

    def append(self, line: bytes) -> None:
        """On disk (page cache; with ``fsync`` on the device) when this returns."""
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            # Cut a torn line off (disk full mid-write), so the next line does not start inside it.
            os.ftruncate(self._fd, self._bytes)
            raise
        self._bytes += len(line)

    def seal(self) -> Path | None:
        """Close the current segment and start a new one; ``None`` when nothing was appended."""
        if not self._bytes:
            return None
        os.close(self._fd)
        sealed = self.current
        self._open()
        return sealed

    def close(self) -> None:
        os.close(self._fd)
        if not self._bytes:
            self.current.unlink(missing_ok=True)
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


def _spool_line(kind: str, chunk: Chunk, now: pd.Timestamp) -> bytes:
    columns = chunk.to_dict("list") if isinstance(chunk, pd.DataFrame) else dict(chunk)
    entry = {"kind": kind, "now": now.isoformat(), "chunk": columns}
    return json.dumps(entry, default=_jsonable).encode() + b"\n"


def _read_segment(path: Path) -> tuple[dict[str, list[tuple[Chunk, pd.Timestamp]]], list[DeadRow]]:
    """A segment's chunks by kind, and its unreadable lines (a torn last write, a corrupt disk)."""
    queues: dict[str, list[tuple[Chunk, pd.Timestamp]]] = {kind: [] for kind in KINDS}
    dead: list[DeadRow] = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            entry = json.loads(line)
            if entry["kind"] not in queues:
                raise ValueError(f"unknown kind {entry['kind']!r}")
            chunk_rows(entry["chunk"])
            queues[entry["kind"]].append((entry["chunk"], pd.Timestamp(entry["now"])))
        except Exception as exc:
            line_text = line.decode("utf-8", "replace")
            dead.append(({"spool_line": line_text}, f"unreadable spool line {number} of {path.name}: {exc}"))
    return queues, dead


# ---- the writer ----------------------------------------------------------------------------------
class LogEvents(Protocol):
    """What the writer reports (the gateway turns it into Prometheus metrics); ``cause`` is a small
    fixed set: ``encode`` / ``storage`` for rows set aside, ``queue_full`` / ``storage`` for lost ones."""

    def written(self, kind: str, rows: int) -> None: ...
    def failed(self, kind: str, rows: int, cause: str) -> None: ...
    def dropped(self, kind: str, rows: int, cause: str) -> None: ...
    def write_seconds(self, kind: str, seconds: float) -> None: ...


class _NoEvents:
    def written(self, kind: str, rows: int) -> None:
        pass

    def failed(self, kind: str, rows: int, cause: str) -> None:
        pass

    def dropped(self, kind: str, rows: int, cause: str) -> None:
        pass

    def write_seconds(self, kind: str, seconds: float) -> None:
        pass


@dataclass
class _Batch:
    """One flush: its id names every file it writes, so writing it twice writes the same files."""

    id: str
    queues: dict[str, list[tuple[Chunk, pd.Timestamp]]]
    dead: list[DeadRow]  # rows already known unusable (unreadable spool lines)


class InferenceLogWriter:
    """Batches appended chunks in memory and writes them from a background thread.

    ``append_*`` costs a lock and a list append (plus one ``write`` to the spool in durable mode),
    so the request path never waits on Parquet or remote storage. Rows reach storage after at most
    ``flush_interval_s`` or as soon as ``max_rows`` are queued; ``close()`` writes whatever is
    left. What can go wrong stays bounded:

    - a row that cannot be encoded goes to the dead-letter file with the reason; the rest of its
      batch is written (``encode``);
    - storage errors are retried ``WRITE_ATTEMPTS`` times with back-off, then the rows go to the
      dead-letter file; if that fails too they are lost and counted, or, in durable mode, kept in
      the spool and tried again at the next flush and at the next start;
    - past ``max_queued_rows`` new rows are dropped and counted instead of growing memory or
      blocking the caller.

    Without a spool a SIGKILL loses the rows queued since the last flush (at most one flush
    interval). With ``spool_dir`` every chunk is appended to a local segment file before
    ``append_*`` returns (durable across a process crash; with ``fsync`` across power loss too),
    and a new writer on the same spool replays what the last one did not store.
    """

    WRITE_ATTEMPTS = 3
    RETRY_BACKOFF_S = 0.2
    CLEANUP_INTERVAL_S = 600.0  # stale temporaries of crashed writers (``conveyor.core.atomic``)
    DROP_LOG_INTERVAL_S = 10.0

    def __init__(
        self,
        url: str,
        *,
        flush_interval_s: float = 1.0,
        max_rows: int = 10_000,
        max_queued_rows: int = 100_000,
        storage_options: dict | None = None,
        spool_dir: str | Path | None = None,
        fsync: bool = False,
        events: LogEvents | None = None,
    ) -> None:
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be positive")
        if max_queued_rows < max_rows:
            raise ValueError(f"max_queued_rows ({max_queued_rows}) must be at least max_rows ({max_rows})")
        if fsync and spool_dir is None:
            raise ValueError("fsync applies to the durable spool: set spool_dir too")
        self.url = url
        self.flush_interval_s = flush_interval_s
        self.max_rows = max_rows
        self.max_queued_rows = max_queued_rows
        self.storage_options = storage_options
        self._fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self._root = root.rstrip("/")
        self._events: LogEvents = events or _NoEvents()
        self._spool = _Spool(spool_dir, fsync) if spool_dir is not None else None
        self._pending: list[Path] = list(self._spool.leftovers) if self._spool else []
        self._lock = threading.Lock()
        self._queues: dict[str, list[tuple[Chunk, pd.Timestamp]]] = {kind: [] for kind in KINDS}
        self._queued_rows = 0
        self._last_drop_log = 0.0
        self._touched: set[str] = set()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self.recovered = threading.Event()  # set once the start-up pass (cleanup, spool replay) ran
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="inference-log-writer", daemon=True)
        self._thread.start()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

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
        line = _spool_line(kind, chunk, now) if self._spool else None  # serialised outside the lock
        with self._lock:
            accepted = self._queued_rows + rows <= self.max_queued_rows
            if accepted:
                if line is not None:
                    self._spool.append(line)  # an OSError reaches the caller: this row is not durable
                self._queues[kind].append((chunk, now))
                self._queued_rows += rows
            full = self._queued_rows >= self.max_rows
        if not accepted:
            self._events.dropped(kind, rows, "queue_full")
            if time.monotonic() - self._last_drop_log > self.DROP_LOG_INTERVAL_S:
                self._last_drop_log = time.monotonic()
                log.warning(
                    "inference log: queue full (%d rows), dropping new rows; storage is slower than traffic",
                    self.max_queued_rows,
                )
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Write everything queued so far (blocks until written or set aside)."""
        with self._write_lock:
            for segment in list(self._pending):
                self._replay(segment)
            with self._lock:
                queues = {kind: items for kind, items in self._queues.items() if items}
                self._queues = {kind: [] for kind in KINDS}
                self._queued_rows = 0
                sealed = self._spool.seal() if self._spool else None
            if not queues:
                return
            batch = _Batch(sealed.stem if sealed else uuid.uuid4().hex, queues, [])
            if self._store(batch) and sealed is not None:
                sealed.unlink()
            elif sealed is not None:
                self._pending.append(sealed)

    def _replay(self, segment: Path) -> None:
        """Store a segment a previous writer (or a failed flush) left in the spool, then delete it."""
        queues, dead = _read_segment(segment)
        rows = sum(chunk_rows(chunk) for items in queues.values() for chunk, _ in items)
        if self._store(_Batch(segment.stem, queues, dead)):
            segment.unlink()
            self._pending.remove(segment)
            log.info("inference log: replayed %d rows from spool segment %s", rows, segment.name)
        else:
            log.error("inference log: spool segment %s still not stored; kept for the next try", segment.name)

    def _store(self, batch: _Batch) -> bool:
        """Write a batch: good rows to the log, the others to dead-letter files.

        False when some rows could be stored nowhere and the batch must stay in the spool.
        """
        stored = True
        for kind, items in batch.queues.items():
            if items:
                frame, dead = _merge(items)
                stored &= self._store_kind(kind, frame, {"encode": dead}, batch.id)
        if batch.dead:
            stored &= self._store_kind("spool", pd.DataFrame(), {"encode": batch.dead}, batch.id)
        return stored

    def _store_kind(
        self, kind: str, frame: pd.DataFrame, aside: dict[str, list[DeadRow]], batch: str
    ) -> bool:
        started = time.perf_counter()
        aside.setdefault("storage", [])
        for hour, part in _hour_parts(frame):
            data, bad = encode(part)
            aside["encode"] += [(part.loc[label].to_dict(), reason) for label, reason in bad.items()]
            if data is None:
                continue
            try:
                self._put(_partition_path(self._root, kind, hour), f"{batch}.parquet", data)
            except Exception as exc:  # retried already if transient; the rows go aside, not in a loop
                reason = f"storage: {type(exc).__name__}: {exc}"
                aside["storage"] += [(row, reason) for row in part.drop(index=list(bad)).to_dict("records")]
                continue
            self._events.written(kind, len(part) - len(bad))
        if len(frame):
            self._events.write_seconds(kind, time.perf_counter() - started)
        rows = [entry for entries in aside.values() for entry in entries]
        if not rows:
            return True
        folder = f"{self._root}/{DEAD_LETTER}/{kind}"
        try:
            self._put(folder, f"{batch}.jsonl", _dead_letter_bytes(kind, batch, rows))
        except Exception:
            if self._spool is not None:
                log.exception(
                    "inference log: %d %s rows neither in the log nor dead-lettered", len(rows), kind
                )
                return False
            log.exception(
                "inference log: %d %s rows lost: storage refused the log and dead-letter", len(rows), kind
            )
            self._events.dropped(kind, len(rows), "storage")
            return True
        for cause, entries in aside.items():
            if entries:
                self._events.failed(kind, len(entries), cause)
        log.error(
            "inference log: %d %s rows could not be logged (first: %s); they are in %s/%s.jsonl",
            len(rows), kind, rows[0][1], folder, batch,
        )  # fmt: skip
        return True

    def _put(self, folder: str, name: str, data: bytes) -> None:
        """One whole file, with bounded retries of transient storage errors (OSError)."""
        for attempt in range(self.WRITE_ATTEMPTS):
            try:
                self._fs.makedirs(folder, exist_ok=True)
                fs_write_bytes(self._fs, f"{folder}/{name}", data)
                self._touched.add(folder)
                return
            except OSError as exc:
                if attempt + 1 == self.WRITE_ATTEMPTS:
                    raise
                log.warning("inference log: writing %s/%s failed (%s), retrying", folder, name, exc)
                time.sleep(self.RETRY_BACKOFF_S * 2**attempt)

    def _clean(self, folders: list[str]) -> None:
        for folder in folders:
            try:
                removed = remove_stale_temporaries(self._fs, folder)
            except OSError as exc:
                log.warning("inference log: could not clean temporaries in %s: %s", folder, exc)
                continue
            if removed:
                log.warning(
                    "inference log: removed %d temporaries a crashed writer left: %s", len(removed), removed
                )

    def _run(self) -> None:
        # Crashed writers (this gateway's last life, or another gateway on the same root) may have
        # left temporaries anywhere; afterwards, checking the folders written to is enough.
        self._clean(
            [f"{self._root}/{kind}/date=*/hour=*" for kind in KINDS] + [f"{self._root}/{DEAD_LETTER}/*"]
        )
        next_clean = time.monotonic() + self.CLEANUP_INTERVAL_S
        self.flush()  # replays what a previous writer left in the spool
        self.recovered.set()
        while not self._stopped.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self.flush()
            if time.monotonic() >= next_clean:
                folders, self._touched = sorted(self._touched), set()
                self._clean(folders)
                next_clean = time.monotonic() + self.CLEANUP_INTERVAL_S

    def close(self) -> None:
        """Stop the background thread and write what is left."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()
        if self._spool is not None:
            self._spool.close()

    def __enter__(self) -> InferenceLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
