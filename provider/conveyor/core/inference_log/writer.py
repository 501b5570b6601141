"""The gateway's writer: appends queue in memory, a background thread stores them as Parquet.

Also ``write_partitioned``, the strict one-shot writer tests and tools use to lay down a log.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import fsspec
import pandas as pd

from conveyor.core.atomic import fs_write_bytes, remove_stale_temporaries
from conveyor.core.inference_log.chunks import Chunk, Pending, chunk_rows, merge_chunks
from conveyor.core.inference_log.dead_letter import DeadRow, dead_letter_bytes
from conveyor.core.inference_log.encoding import Encoded, encode, encode_columns, to_parquet
from conveyor.core.inference_log.layout import (
    FEEDBACK,
    KINDS,
    PREDICTIONS,
    ROOT_MARKER,
    dead_letter_folder,
    hour_parts,
    partition_path,
)
from conveyor.core.inference_log.spool import Spool, read_segment, spool_line

log = logging.getLogger(__name__)


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
    for hour, part in hour_parts(frame):
        folder = partition_path(root, kind, hour)
        fs.makedirs(folder, exist_ok=True)
        path = f"{folder}/{uuid.uuid4().hex}.parquet"
        fs_write_bytes(fs, path, to_parquet(part))
        written.append(path)
    return written


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
    queues: dict[str, Pending]
    dead: list[DeadRow]  # rows already known unusable (unreadable spool lines)


class InferenceLogWriter:
    """Batches appended chunks in memory and writes them from a background thread.

    ``append_*`` costs a lock and a few list extends (plus one ``write`` to the spool in durable
    mode), so the request path never waits on Parquet or remote storage; the flush of the
    gateway's plain chunks goes from lists to Arrow without pandas, so it holds the GIL briefly.
    Rows reach storage after at most ``flush_interval_s`` or as soon as ``max_rows`` are queued;
    ``close()`` writes whatever is left. What can go wrong stays bounded:

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
        self._spool = Spool(spool_dir, fsync) if spool_dir is not None else None
        self._pending: list[Path] = list(self._spool.leftovers) if self._spool else []
        self._lock = threading.Lock()
        self._queues: dict[str, Pending] = {kind: Pending() for kind in KINDS}
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
        now_ns = time.time_ns()
        # serialised outside the lock
        line = spool_line(kind, chunk, pd.Timestamp(now_ns, tz="UTC")) if self._spool else None
        with self._lock:
            accepted = self._queued_rows + rows <= self.max_queued_rows
            if accepted:
                if line is not None:
                    self._spool.append(line)  # an OSError reaches the caller: this row is not durable
                self._queues[kind].add(chunk, rows, now_ns)
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
                queues = {kind: pending for kind, pending in self._queues.items() if pending}
                self._queues = {kind: Pending() for kind in KINDS}
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
        segment_queues, dead = read_segment(segment)
        queues, rows = {}, 0
        for kind, items in segment_queues.items():
            pending = queues[kind] = Pending()
            for chunk, now in items:
                pending.add(chunk, chunk_rows(chunk), now.value)
                rows += chunk_rows(chunk)
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
        for kind, pending in batch.queues.items():
            if pending:
                started = time.perf_counter()
                aside: dict[str, list[DeadRow]] = {"encode": []}
                plain = pending.columns
                parts = None if pending.others else encode_columns(plain.columns, plain.stamps)
                if parts is None:
                    frame, aside["encode"] = merge_chunks(pending)
                    parts = _frame_parts(frame, aside)
                stored &= self._store_kind(kind, parts, aside, batch.id, started)
        if batch.dead:
            stored &= self._store_kind("spool", [], {"encode": batch.dead}, batch.id)
        return stored

    def _store_kind(
        self,
        kind: str,
        parts: Iterator[Encoded] | list[Encoded],
        aside: dict[str, list[DeadRow]],
        batch: str,
        started: float | None = None,
    ) -> bool:
        """Store encoded ``parts``, and the rows set ``aside`` in a dead-letter file; ``started``:
        when this kind's flush began, for its write time (none for a spool's unreadable lines)."""
        aside.setdefault("storage", [])
        for part in parts:
            if part.data is None:
                continue
            try:
                self._put(partition_path(self._root, kind, part.hour), f"{batch}.parquet", part.data)
            except Exception as exc:  # retried already if transient; the rows go aside, not in a loop
                reason = f"storage: {type(exc).__name__}: {exc}"
                aside["storage"] += [(row, reason) for row in part.records()]
                continue
            self._events.written(kind, part.rows)
        if started is not None:
            self._events.write_seconds(kind, time.perf_counter() - started)
        rows = [entry for entries in aside.values() for entry in entries]
        if not rows:
            return True
        folder = dead_letter_folder(self._root, kind)
        try:
            self._put(folder, f"{batch}.jsonl", dead_letter_bytes(kind, batch, rows))
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

    def _create_root(self) -> None:
        """The log root exists from the writer's start, not from its first flush: monitors refuse a
        root that does not exist (a wrong URL), and must not refuse a gateway that just started."""
        try:
            self._fs.makedirs(self._root, exist_ok=True)
            if not self._fs.isdir(self._root):  # an object store: a prefix exists once it holds one
                fs_write_bytes(self._fs, f"{self._root}/{ROOT_MARKER}", b"")
        except OSError as exc:  # storage down at start: the first flush retries, and counts losses
            log.warning("inference log: could not create %s yet: %s", self._root, exc)

    def _run(self) -> None:
        self._create_root()
        # Crashed writers (this gateway's last life, or another gateway on the same root) may have
        # left temporaries anywhere; afterwards, checking the folders written to is enough.
        self._clean(
            [f"{self._root}/{kind}/date=*/hour=*" for kind in KINDS] + [dead_letter_folder(self._root, "*")]
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


def _frame_parts(frame: pd.DataFrame, aside: dict[str, list[DeadRow]]) -> Iterator[Encoded]:
    """The pandas path: ``frame``'s hour parts encoded, rows that cannot be put in ``aside``."""
    for hour, part in hour_parts(frame):
        data, bad = encode(part)
        aside["encode"] += [(part.loc[label].to_dict(), reason) for label, reason in bad.items()]
        yield Encoded(hour, data, len(part) - len(bad), partial(_records_without, part, list(bad)))


def _records_without(part: pd.DataFrame, bad: list) -> list[dict]:
    return part.drop(index=bad).to_dict("records")
