"""Adaptive micro-batching: concurrent requests to one model share one ``predict`` call.

No timer and no fixed batch size: a request that arrives while the model is idle runs at once
(no added latency at low load); requests that arrive while a prediction runs wait for it to
finish and then go together. The batch size therefore follows the load by itself, and the
per-call overhead of the model (pandas, preprocessing, torch dispatch) is paid once per batch
instead of once per request.

Requests no caller waits for (the shadow's mirrored copies) are *patient*: they wait up to
``linger_s`` for company, and ride along with any batch that starts meanwhile. A shadow sees a
small share of the traffic, so without this most of its batches were of one row, each paying
the model's whole per-call overhead: the main cost of a shadow to the gateway's throughput.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from conveyor.serving.models import BatchOutput, LoadedModel
from conveyor.serving.schema import Columns


@dataclass
class _Pending:
    columns: Columns
    rows: int
    future: asyncio.Future = field(repr=False)
    taken: float = 0.0  # perf_counter() when its batch was taken for prediction


class MicroBatcher:
    """Queues requests for one loaded model and predicts them in batches on its own thread."""

    def __init__(self, model: LoadedModel, max_batch_rows: int = 2048, linger_s: float = 0.05) -> None:
        self.model = model
        self.max_batch_rows = max_batch_rows
        self.linger_s = linger_s
        self._pending: deque[_Pending] = deque()
        self._patient: deque[_Pending] = deque()
        self._patient_rows = 0
        self._release: asyncio.TimerHandle | None = None
        self._draining = False
        # One thread per model: predictions of one model run one batch at a time (that is what
        # makes the next batch bigger), while stable, canary and shadow never queue behind each other.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"predict-{model.version}")
        self.batches = 0
        self.rows = 0

    async def predict(self, columns: Columns, rows: int) -> BatchOutput:
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(columns, rows, future))
        self._start_drain()
        return await future

    async def predict_patiently(self, columns: Columns, rows: int) -> tuple[BatchOutput, float]:
        """A prediction nobody waits for: the output, and seconds from its batch's start (the
        time it lingered is not the model's latency)."""
        loop = asyncio.get_running_loop()
        item = _Pending(columns, rows, loop.create_future())
        self._patient.append(item)
        self._patient_rows += rows
        if self._patient_rows >= self.max_batch_rows:
            self._release_patient()
        elif self._release is None:
            self._release = loop.call_later(self.linger_s, self._release_patient)
        output = await item.future
        return output, time.perf_counter() - item.taken

    def _release_patient(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None
        self._pending.extend(self._patient)
        self._patient.clear()
        self._patient_rows = 0
        self._start_drain()

    def _start_drain(self) -> None:
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())

    def _take(self) -> list[_Pending]:
        """The next batch: waiting requests first, then patient ones while there is room."""
        batch, total, taken = [], 0, time.perf_counter()
        for queue in (self._pending, self._patient):
            while queue and (not batch or total + queue[0].rows <= self.max_batch_rows):
                item = queue.popleft()
                item.taken = taken
                batch.append(item)
                total += item.rows
                if queue is self._patient:
                    self._patient_rows -= item.rows
        if not self._patient and self._release is not None:
            self._release.cancel()
            self._release = None
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._take()
                try:
                    output = await loop.run_in_executor(self._executor, self._run, batch)
                except Exception as exc:
                    if len(batch) == 1:
                        _fail(batch[0], exc)
                        continue
                    # One bad request must not fail its neighbours: retry each on its own.
                    for item in batch:
                        try:
                            _resolve(item, await loop.run_in_executor(self._executor, self._run, [item]))
                        except Exception as item_exc:
                            _fail(item, item_exc)
                    continue
                start = 0
                for item in batch:
                    _resolve(item, output.slice(start, start + item.rows))
                    start += item.rows
        finally:
            self._draining = False

    def _run(self, batch: list[_Pending]) -> BatchOutput:
        if len(batch) == 1:
            columns, rows = batch[0].columns, batch[0].rows
        else:
            rows = sum(item.rows for item in batch)
            names = {name for item in batch for name in item.columns}
            columns = {name: [] for name in names}
            for item in batch:
                for name in names:
                    columns[name].extend(item.columns.get(name) or [None] * item.rows)
        self.batches += 1
        self.rows += rows
        return self.model.predict_columns(columns, rows)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _resolve(item: _Pending, output: BatchOutput) -> None:
    if not item.future.done():
        item.future.set_result(output)


def _fail(item: _Pending, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)
