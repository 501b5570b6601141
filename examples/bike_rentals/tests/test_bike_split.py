"""The time-ordered split: training never sees an hour later than those it is judged on."""

from __future__ import annotations

import pandas as pd
import pytest
from bike_frames import make_hours
from hypothesis import given, settings
from hypothesis import strategies as st

from bike_rentals.schema import TIMESTAMP
from bike_rentals.splits import split_by_time


def test_blocks_are_consecutive_in_time_even_from_shuffled_rows() -> None:
    rows = make_hours(days=10).sample(frac=1.0, random_state=3)
    splits = split_by_time(rows, validation_fraction=0.15, test_fraction=0.15)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (168, 36, 36)
    assert splits.train[TIMESTAMP].max() < splits.validation[TIMESTAMP].min()
    assert splits.validation[TIMESTAMP].max() < splits.test[TIMESTAMP].min()
    # no hour lost or repeated
    together = pd.concat([splits.train, splits.validation, splits.test])[TIMESTAMP]
    assert sorted(together) == sorted(rows[TIMESTAMP])


@settings(max_examples=40, deadline=None)
@given(
    days=st.integers(1, 20),
    drop=st.integers(0, 30),
    validation=st.floats(0.05, 0.4),
    test=st.floats(0.05, 0.4),
    seed=st.integers(0, 1000),
)
def test_no_future_hour_ever_reaches_training(
    days: int, drop: int, validation: float, test: float, seed: int
) -> None:
    rows = make_hours(days=days).sample(frac=1.0, random_state=seed)
    rows = rows.iloc[: max(3, len(rows) - drop)]
    splits = split_by_time(rows, validation_fraction=validation, test_fraction=test)
    assert min(len(splits.train), len(splits.validation), len(splits.test)) >= 1
    assert (
        splits.train[TIMESTAMP].max()
        < splits.validation[TIMESTAMP].min()
        <= splits.validation[TIMESTAMP].max()
    )
    assert splits.validation[TIMESTAMP].max() < splits.test[TIMESTAMP].min()


@pytest.mark.parametrize(("validation", "test"), [(0.0, 0.2), (0.2, 1.0), (0.5, 0.5)])
def test_fractions_that_leave_nothing_to_train_are_refused(validation: float, test: float) -> None:
    with pytest.raises(ValueError, match="leave rows to train on"):
        split_by_time(make_hours(days=2), validation_fraction=validation, test_fraction=test)
