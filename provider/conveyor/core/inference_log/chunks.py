"""What callers append: chunks (a DataFrame, or a mapping column -> values with scalars broadcast),
and how a flush's worth of them becomes one frame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from conveyor.core.inference_log.dead_letter import DeadRow

Chunk = pd.DataFrame | Mapping[str, Sequence[Any] | Any]
Queued = tuple[Chunk, pd.Timestamp]  # a chunk and when it was appended (its rows' default ``ts``)


def is_column(value: Any) -> bool:
    return not isinstance(value, str | bytes) and hasattr(value, "__len__")


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


def merge_chunks(items: list[Queued]) -> tuple[pd.DataFrame, list[DeadRow]]:
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
                columns[name].extend(value if is_column(value) else [value] * rows)
            stamps.extend([now] * rows)
        frames.append(pd.DataFrame({**columns, "ts": pd.to_datetime(stamps, utc=True)}))
    if not frames:
        return pd.DataFrame(), dead
    return (frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)), dead
