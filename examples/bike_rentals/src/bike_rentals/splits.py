"""Time-ordered train / validation / test split of a partition's labelled hours.

The earliest hours train, the next ones decide early stopping, the latest are held out: the
model is judged on hours after everything it learnt from, as it will be in production.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bike_rentals.schema import TIMESTAMP


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def split_by_time(rows: pd.DataFrame, validation_fraction: float, test_fraction: float) -> Splits:
    """Consecutive blocks of ``rows`` in timestamp order; each block gets at least one row."""
    if not (
        0 < validation_fraction < 1 and 0 < test_fraction < 1 and validation_fraction + test_fraction < 1
    ):
        raise ValueError(
            "validation_fraction and test_fraction must be in (0, 1) and leave rows to train on, "
            f"got {validation_fraction} and {test_fraction}"
        )
    if len(rows) < 3:
        raise ValueError(f"a time-ordered split needs at least 3 rows, got {len(rows)}")
    ordered = rows.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
    n_test = max(1, round(len(ordered) * test_fraction))
    n_validation = max(1, round(len(ordered) * validation_fraction))
    n_train = len(ordered) - n_test - n_validation
    if n_train < 1:
        raise ValueError(f"{len(rows)} rows leave none to train on after validation and test")
    return Splits(
        train=ordered.iloc[:n_train].reset_index(drop=True),
        validation=ordered.iloc[n_train : n_train + n_validation].reset_index(drop=True),
        test=ordered.iloc[n_train + n_validation :].reset_index(drop=True),
    )
