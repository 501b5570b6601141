"""Which inference-log rows a check looks at, and how many there are (cheaply, for triggers).

Kept apart from the statistics so the triggerer imports only pandas/pyarrow/fsspec, never
alibi-detect, MLflow or matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from conveyor.core import inference_log
from conveyor.core.inference_log.layout import utc


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in UTC."""

    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def ending(cls, end: datetime | str | pd.Timestamp, hours: float) -> Window:
        if hours <= 0:
            raise ValueError(f"window_hours must be positive, got {hours}")
        stop = utc(end)
        return cls(stop - timedelta(hours=hours), stop)

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


class RowCounter:
    """Counts inference-log rows in a window cheaply enough for a triggerer's polling loop.

    Log files are immutable (one new file per flush), so each file's matching timestamps are read
    once (only the ``ts``/``model_version``/``slot`` columns) and cached; later polls only list
    the window's hour folders and open files that appeared since.
    """

    def __init__(
        self,
        url: str,
        kind: str = inference_log.PREDICTIONS,
        model_version: str | None = None,
        slot: str | None = None,
        storage_options: dict | None = None,
    ) -> None:
        self.url, self.kind = url, kind
        self.model_version, self.slot = model_version, slot
        self.storage_options = storage_options
        self._seen: dict[str, np.ndarray] = {}

    def count(self, window: Window) -> int:
        """Rows in ``window``; a file that is not complete Parquet (another tool's) counts none.

        Such a file is not cached: if it becomes whole later (a copy finishing), its rows count.
        Whether a monitor may test a window with such a file in it is ``LogCheck``'s call, not the
        counter's: a crash here would only end the triggerer's wait with a stack trace.
        """
        import fsspec

        fs, root = fsspec.core.url_to_fs(self.url, **(self.storage_options or {}))
        filters = (
            {"model_version": self.model_version, "slot": self.slot} if self.kind == "predictions" else {}
        )
        columns = ["ts", *[c for c, v in filters.items() if v is not None]]
        stamps = []
        for path in inference_log.partition_files(fs, root, self.kind, window.start, window.end):
            if path not in self._seen:
                table = inference_log.read_log_file(fs, path, columns)
                if table is None:
                    continue
                for column, wanted in filters.items():
                    if wanted is not None:
                        table = table[table[column].astype(str) == str(wanted)]
                self._seen[path] = pd.to_datetime(table["ts"], utc=True).to_numpy(dtype="datetime64[ns]")
            stamps.append(self._seen[path])
        if not stamps:
            return 0
        ts = np.concatenate(stamps)
        start, end = np.datetime64(window.start.tz_convert(None)), np.datetime64(window.end.tz_convert(None))
        return int(((ts >= start) & (ts < end)).sum())


def read_window(
    url: str,
    window: Window,
    model_version: str | None,
    slot: str | None = None,
    max_rows: int | None = None,
    storage_options: dict | None = None,
) -> pd.DataFrame:
    """The window's predictions; with ``max_rows``, only the latest rows ("last N rows")."""
    frame = inference_log.read_predictions(
        url, window.start, window.end, model_version=model_version, slot=slot, storage_options=storage_options
    )
    return frame.tail(max_rows).reset_index(drop=True) if max_rows else frame


def readiness(
    counter: RowCounter,
    *,
    window_hours: float,
    window_end: datetime | str | None,
    min_rows: int,
    since: datetime | str | None = None,
    min_new_rows: int = 0,
    now: datetime | str | None = None,
) -> dict[str, Any]:
    """Is there enough data to test? Plain JSON, so it can travel in a ``TriggerEvent``.

    ``window_end=None`` slides the window with ``now``; a fixed end "closes" the window once it
    has passed, and a closed window is tested with whatever it holds. ``since``/``min_new_rows``
    ask for fresh rows after a previous check (so a re-check never tests the same data twice).
    """
    current = utc(now) if now is not None else pd.Timestamp.now(tz="UTC")
    end = utc(window_end) if window_end is not None else current
    window = Window.ending(end, window_hours)
    closed = window_end is not None and current >= end
    rows = counter.count(window)
    if since is None:
        new_rows = rows
    else:
        after = max(utc(since), window.start)
        new_rows = counter.count(Window(after, end)) if after < end else 0
    return {
        "ready": bool(closed or (rows >= min_rows and new_rows >= min_new_rows)),
        "closed": bool(closed),
        "rows": rows,
        "new_rows": new_rows,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "seconds_to_close": (end - current).total_seconds() if window_end is not None else None,
    }
