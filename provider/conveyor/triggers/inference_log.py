"""``InferenceLogTrigger``: waits, in the triggerer, until an inference-log window holds enough rows.

It only counts (file listing + the ``ts`` column of files it has not seen yet, in a worker
thread so the triggerer's event loop never blocks); the statistics run on the worker afterwards.
A log it cannot read (missing root, a file that is not complete Parquet, a storage error) ends
the wait with an error event naming it: never "not enough rows yet", which would end skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class InferenceLogUnreadable(RuntimeError):
    """The inference log (its root, or one of its files) cannot be read: the monitor must fail."""


class LogCheck:
    """Strict pre-flight for a monitor: the log root exists and every file in a window is whole.

    The shared readers skip a file that is not complete Parquet (a dashboard should still show
    the rest); a monitor must not: testing what is left could read as "no drift". Log files are
    immutable, so each one is checked once (its footer only) per ``LogCheck``.
    """

    def __init__(self, url: str, storage_options: dict | None = None) -> None:
        if not str(url or "").strip():
            raise InferenceLogUnreadable(
                "inference_log_url is empty: set the param or the Airflow Variable conveyor_inference_log_url"
            )
        self.url = url
        self.storage_options = storage_options
        self._whole: set[str] = set()

    def window(self, kind: str, window_hours: float, window_end: str | None) -> None:
        """``check`` the window a count is about to look at (``window_end=None``: ending now)."""
        from conveyor.core.drift.window import Window

        window = Window.ending(window_end or _now(), window_hours)
        self.check(kind, window.start, window.end)

    def check(self, kind: str, start: Any, end: Any) -> None:
        """Raise ``InferenceLogUnreadable`` naming the first problem in ``kind``'s ``[start, end)``."""
        import fsspec
        import pandas as pd
        import pyarrow.parquet as pq

        from conveyor.core.inference_log import partition_files

        fs, root = fsspec.core.url_to_fs(self.url, **(self.storage_options or {}))
        if not fs.isdir(root):
            raise InferenceLogUnreadable(
                f"inference log {self.url!r} does not exist: wrong inference_log_url, an unmounted "
                "volume, or a gateway that never logged there"
            )
        for path in partition_files(fs, root, kind, pd.Timestamp(start), pd.Timestamp(end)):
            if path in self._whole:
                continue
            try:
                with fs.open(path, "rb") as handle:
                    pq.read_metadata(handle)
            except FileNotFoundError:
                continue  # removed since the listing (retention): no rows to miss
            except Exception as exc:
                raise InferenceLogUnreadable(
                    f"inference log file {path} is unreadable ({type(exc).__name__}: {exc}); "
                    "fix or remove it, the window cannot be tested without it"
                ) from exc
            self._whole.add(path)


def _now() -> Any:
    import pandas as pd

    return pd.Timestamp.now(tz="UTC")


class InferenceLogTrigger(BaseTrigger):
    """Fires when ``[end - window_hours, end)`` holds ``min_rows`` rows (and ``min_new_rows`` after
    ``since``), or when a fixed ``window_end`` has passed ("the window closed").

    :param window_end: ISO timestamp of a fixed window end, or ``None`` for a window sliding with now.
    :param kind: ``predictions`` or ``feedback``.
    :param echo: plain-JSON data returned untouched in the event (the waiting task's state: it
        survives even where method kwargs do not, e.g. ``dag.test()``, which passes only the event).
    :param give_up_at: ISO time after which a window still too quiet fires ``too_few_rows`` with
        its counts (the sensor's timeout, so the task can say how quiet it was); ``None``: never.
    """

    def __init__(
        self,
        log_url: str,
        window_hours: float,
        min_rows: int,
        kind: str = "predictions",
        window_end: str | None = None,
        model_version: str | None = None,
        slot: str | None = None,
        since: str | None = None,
        min_new_rows: int = 0,
        poll_interval: float = 60.0,
        storage_options: dict | None = None,
        echo: dict | None = None,
        give_up_at: str | None = None,
    ) -> None:
        super().__init__()
        self.log_url = log_url
        self.window_hours = float(window_hours)
        self.min_rows = int(min_rows)
        self.kind = kind
        self.window_end = window_end
        self.model_version = model_version
        self.slot = slot
        self.since = since
        self.min_new_rows = int(min_new_rows)
        self.poll_interval = float(poll_interval)
        self.storage_options = storage_options
        self.echo = echo
        self.give_up_at = give_up_at
        self._check: LogCheck | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "log_url": self.log_url,
                "window_hours": self.window_hours,
                "min_rows": self.min_rows,
                "kind": self.kind,
                "window_end": self.window_end,
                "model_version": self.model_version,
                "slot": self.slot,
                "since": self.since,
                "min_new_rows": self.min_new_rows,
                "poll_interval": self.poll_interval,
                "storage_options": self.storage_options,
                "echo": self.echo,
                "give_up_at": self.give_up_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import pandas as pd

        from conveyor.core.drift.window import RowCounter

        counter = RowCounter(self.log_url, self.kind, self.model_version, self.slot, self.storage_options)
        while True:
            try:
                state = await asyncio.to_thread(self._poll, counter)
            except Exception as exc:
                yield TriggerEvent(
                    {"status": "error", "message": f"{type(exc).__name__}: {exc}", "echo": self.echo}
                )
                return
            if state["ready"]:
                yield TriggerEvent(
                    {"status": "closed" if state["closed"] else "ready", **state, "echo": self.echo}
                )
                return
            if self.give_up_at is not None and _now() >= pd.Timestamp(self.give_up_at):
                yield TriggerEvent({"status": "too_few_rows", **state, "echo": self.echo})
                return
            self.log.info(
                "inference log %s: %d/%d rows in window, %d/%d new; waiting",
                self.kind,
                state["rows"],
                self.min_rows,
                state["new_rows"],
                self.min_new_rows,
            )
            to_close = state["seconds_to_close"]
            await asyncio.sleep(self.poll_interval if to_close is None else min(self.poll_interval, to_close))

    def _poll(self, counter: Any) -> dict[str, Any]:
        """One count, after checking that the counted window is readable (runs in a thread)."""
        from conveyor.core.drift.window import readiness

        if self._check is None:
            self._check = LogCheck(self.log_url, self.storage_options)
        self._check.window(self.kind, self.window_hours, self.window_end)
        return readiness(
            counter,
            window_hours=self.window_hours,
            window_end=self.window_end,
            min_rows=self.min_rows,
            since=self.since,
            min_new_rows=self.min_new_rows,
        )
