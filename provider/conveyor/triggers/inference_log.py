"""``InferenceLogTrigger``: waits, in the triggerer, until an inference-log window holds enough rows.

It only counts (file listing + the ``ts`` column of files it has not seen yet, in a worker
thread so the triggerer's event loop never blocks); the statistics run on the worker afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class InferenceLogTrigger(BaseTrigger):
    """Fires when ``[end - window_hours, end)`` holds ``min_rows`` rows (and ``min_new_rows`` after
    ``since``), or when a fixed ``window_end`` has passed ("the window closed").

    :param window_end: ISO timestamp of a fixed window end, or ``None`` for a window sliding with now.
    :param kind: ``predictions`` or ``feedback``.
    :param echo: plain-JSON data returned untouched in the event (the waiting task's state: it
        survives even where method kwargs do not, e.g. ``dag.test()``, which passes only the event).
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
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from conveyor.core.drift.window import RowCounter, readiness

        counter = RowCounter(self.log_url, self.kind, self.model_version, self.slot, self.storage_options)
        while True:
            try:
                state = await asyncio.to_thread(
                    readiness,
                    counter,
                    window_hours=self.window_hours,
                    window_end=self.window_end,
                    min_rows=self.min_rows,
                    since=self.since,
                    min_new_rows=self.min_new_rows,
                )
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
