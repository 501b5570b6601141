"""The micro-batcher: requests that wait go at once; patient ones (shadow copies) wait for company."""

from __future__ import annotations

import asyncio

from conveyor.serving.batching import MicroBatcher
from conveyor.serving.models import BatchOutput
from conveyor.serving.schema import Columns


class Doubling:
    """A model that doubles column ``x`` and records the size of every batch it was given."""

    version = "1"

    def __init__(self) -> None:
        self.batch_rows: list[int] = []

    def predict_columns(self, columns: Columns, rows: int) -> BatchOutput:
        self.batch_rows.append(rows)
        return BatchOutput(None, [[2 * x for x in columns["x"]]])


def test_patient_requests_go_together_after_lingering() -> None:
    model = Doubling()

    async def scenario() -> list[tuple[BatchOutput, float]]:
        batcher = MicroBatcher(model, linger_s=0.05)  # type: ignore[arg-type]
        try:
            return await asyncio.gather(*(batcher.predict_patiently({"x": [i]}, 1) for i in range(5)))
        finally:
            batcher.close()

    results = asyncio.run(scenario())
    assert model.batch_rows == [5]  # one batch, not five of one row
    assert [output.values for output, _ in results] == [[[2 * i]] for i in range(5)]
    assert all(latency >= 0 for _, latency in results)


def test_patient_requests_ride_along_with_a_batch_that_starts_anyway() -> None:
    model = Doubling()

    async def scenario() -> tuple[BatchOutput, tuple[BatchOutput, float]]:
        batcher = MicroBatcher(model, linger_s=3600)  # type: ignore[arg-type]  # only a waiting one can
        try:
            patient = asyncio.ensure_future(batcher.predict_patiently({"x": [10, 11]}, 2))
            await asyncio.sleep(0)
            waiting = await batcher.predict({"x": [1]}, 1)
            return waiting, await asyncio.wait_for(patient, 30)
        finally:
            batcher.close()

    waiting, (patient, _) = asyncio.run(scenario())
    assert model.batch_rows == [3]
    assert waiting.values == [[2]] and patient.values == [[20, 22]]


def test_a_full_batch_of_patient_rows_goes_at_once() -> None:
    model = Doubling()

    async def scenario() -> None:
        batcher = MicroBatcher(model, max_batch_rows=4, linger_s=3600)  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(batcher.predict_patiently({"x": [i, i]}, 2) for i in range(2))), 30
            )
        finally:
            batcher.close()

    asyncio.run(scenario())
    assert model.batch_rows == [4]
