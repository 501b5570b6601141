"""Adaptive micro-batching: concurrent requests to one model share one ``predict`` call.

No timer and no fixed batch size: a request that arrives while the model is idle runs at once
(no added latency at low load); requests that arrive while a prediction runs wait for it to
finish and then go together. The batch size therefore follows the load by itself, and the
per-call overhead of the model (pandas, preprocessing, torch dispatch) is paid once per batch
instead of once per request.
"""

from __future__ import annotations

import asyncio
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


class MicroBatcher:
    """Queues requests for one loaded model and predicts them in batches on its own thread."""

    def __init__(self, model: LoadedModel, max_batch_rows: int = 2048) -> None:
        self.model = model
        self.max_batch_rows = max_batch_rows
        self._pending: deque[_Pending] = deque()
        self._draining = False
        # One thread per model: predictions of one model run one batch at a time (that is what
        # makes the next batch bigger), while stable, canary and shadow never queue behind each other.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"predict-{model.version}")
        self.batches = 0
        self.rows = 0

    async def predict(self, columns: Columns, rows: int) -> BatchOutput:
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(columns, rows, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _take(self) -> list[_Pending]:
        batch, total = [], 0
        while self._pending and (not batch or total + self._pending[0].rows <= self.max_batch_rows):
            item = self._pending.popleft()
            batch.append(item)
            total += item.rows
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
