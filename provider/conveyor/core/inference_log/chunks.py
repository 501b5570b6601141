"""What callers append: chunks (a DataFrame, or a mapping column -> values with scalars broadcast),
and how a flush's worth of them becomes one frame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from conveyor.core.inference_log.dead_letter import DeadRow

Chunk = pd.DataFrame | Mapping[str, Sequence[Any] | Any]
Queued = tuple[Chunk, pd.Timestamp]  # a chunk and when it was appended (its rows' default ``ts``)


def is_column(value: Any) -> bool:
    return type(value) is list or (not isinstance(value, str | bytes) and hasattr(value, "__len__"))


def chunk_rows(chunk: Chunk) -> int:
    """Rows in a chunk: its length, or that of its first column-valued entry (scalars broadcast)."""
    if isinstance(chunk, pd.DataFrame):
        return len(chunk)
    lengths = {len(value) for value in chunk.values() if is_column(value)}
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
    return [{k: v[i] if is_column(v) else v for k, v in chunk.items()} for i in range(rows)]


class ColumnBuffer:
    """Plain chunks (mappings without ``ts``: what the gateway appends, one per request) kept as
    growing columns, with each row's append time in nanoseconds since the epoch (UTC).

    Extending a few lists costs microseconds per request. Keeping each request's dict and lists
    until the flush instead left thousands of containers a second for the garbage collector to
    promote and scan, and a flush that merged them row by row while holding the GIL.
    """

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {}
        self.stamps: list[int] = []

    @property
    def rows(self) -> int:
        return len(self.stamps)

    def add(self, chunk: Mapping[str, Any], rows: int, now_ns: int) -> None:
        """Append ``rows`` rows; a column the chunk lacks gets nulls, a new one nulls before it."""
        before, columns = len(self.stamps), self.columns
        try:
            for name, value in chunk.items():
                column = columns.get(name)
                if column is None:
                    column = columns[name] = [None] * before
                if is_column(value):
                    column.extend(value)
                else:
                    column.extend([value] * rows)
        except TypeError as exc:  # a sized value that cannot be iterated: the chunk is refused whole
            for column in columns.values():
                del column[before:]
            raise ValueError(f"a chunk's column values must be iterable: {exc}") from None
        if len(columns) != len(chunk):
            total = before + rows
            for column in columns.values():
                if len(column) < total:
                    column.extend([None] * rows)
        self.stamps.extend([now_ns] * rows)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({**self.columns, "ts": pd.to_datetime(self.stamps, utc=True)})


def is_plain(chunk: Chunk) -> bool:
    return not isinstance(chunk, pd.DataFrame) and "ts" not in chunk


@dataclass
class Pending:
    """One kind's rows awaiting a flush: plain chunks as columns, the others as they came."""

    columns: ColumnBuffer = field(default_factory=ColumnBuffer)
    others: list[Queued] = field(default_factory=list)

    def add(self, chunk: Chunk, rows: int, now_ns: int) -> None:
        if is_plain(chunk):
            self.columns.add(chunk, rows, now_ns)  # type: ignore[arg-type]
        else:
            self.others.append((chunk, pd.Timestamp(now_ns, tz="UTC")))

    def __bool__(self) -> bool:
        return bool(self.columns.rows or self.others)


def merge_chunks(pending: Pending) -> tuple[pd.DataFrame, list[DeadRow]]:
    """All pending rows as one frame, and the rows of chunks that cannot become one."""
    frames, dead = [], []
    for chunk, now in pending.others:
        try:
            frames.append(_to_frame(chunk, now))
        except Exception as exc:  # e.g. a 'ts' that is no time: only this chunk is lost
            reason = f"unusable chunk: {type(exc).__name__}: {exc}"
            dead.extend((row, reason) for row in _chunk_records(chunk))
    if pending.columns.rows:
        frames.append(pending.columns.frame())
    if not frames:
        return pd.DataFrame(), dead
    return (frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)), dead
