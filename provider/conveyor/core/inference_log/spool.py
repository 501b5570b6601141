"""The durable spool: rows answered but not yet in the log, in local append-only segments."""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from pathlib import Path

import pandas as pd

from conveyor.core.inference_log.chunks import Chunk, Queued, chunk_rows
from conveyor.core.inference_log.dead_letter import DeadRow
from conveyor.core.inference_log.json_values import jsonable
from conveyor.core.inference_log.layout import KINDS


class Spool:
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


def spool_line(kind: str, chunk: Chunk, now: pd.Timestamp) -> bytes:
    """One appended chunk as the spool's JSON line (what ``read_segment`` reads back)."""
    columns = chunk.to_dict("list") if isinstance(chunk, pd.DataFrame) else dict(chunk)
    entry = {"kind": kind, "now": now.isoformat(), "chunk": columns}
    return json.dumps(entry, default=jsonable).encode() + b"\n"


def read_segment(path: Path) -> tuple[dict[str, list[Queued]], list[DeadRow]]:
    """A segment's chunks by kind, and its unreadable lines (a torn last write, a corrupt disk)."""
    queues: dict[str, list[Queued]] = {kind: [] for kind in KINDS}
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
