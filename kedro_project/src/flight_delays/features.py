"""From joined flight rows to model input: raw feature columns, the label and a time column."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from flight_delays.schema import (
    CATEGORICAL,
    DELAY_THRESHOLD_MINUTES,
    FEATURES,
    LABEL,
    NUMERIC,
    TARGET_SOURCE,
    TIME,
)


class Splits(NamedTuple):
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def build_features(flights: pd.DataFrame) -> pd.DataFrame:
    """Features exactly as the served model receives them, plus ``delayed`` and ``time_hour``.

    Cancelled and diverted flights have no arrival delay, hence no label: they are dropped here
    (the data gate has already reported how many there were).
    """
    labelled = flights[flights[TARGET_SOURCE].notna()]
    dates = pd.to_datetime(
        {"year": labelled["year"], "month": labelled["month"], "day": labelled["day"]}, errors="raise"
    )
    out = pd.DataFrame(index=labelled.index)
    for col in CATEGORICAL:
        out[col] = labelled[col].astype(str)
    out["hour"] = labelled["hour"].astype(np.int64)
    out["day_of_week"] = dates.dt.dayofweek.astype(np.int64)
    for col in NUMERIC[2:]:
        out[col] = labelled[col].astype(np.float64)
    out[LABEL] = (labelled[TARGET_SOURCE] > DELAY_THRESHOLD_MINUTES).astype(np.int64)
    out[TIME] = pd.to_datetime(labelled[TIME], utc=True)
    return out[[*FEATURES, LABEL, TIME]].reset_index(drop=True)


def split_by_time(
    model_input: pd.DataFrame,
    validation_fraction: float,
    test_fraction: float,
    max_rows: int | None = None,
    seed: int = 0,
) -> Splits:
    """Earliest rows train, the next validate (early stopping), the latest are held out.

    The cut is made on the whole partition before ``max_rows`` thins each part, so the held-out
    rows of a small run are held out of every run on the same months, whatever its size.
    """
    if (
        not 0 < validation_fraction < 1
        or not 0 < test_fraction < 1
        or validation_fraction + test_fraction >= 1
    ):
        raise ValueError(
            f"validation_fraction={validation_fraction} and test_fraction={test_fraction} must be in (0, 1) "
            "and leave rows to train on"
        )
    ordered = model_input.sort_values(TIME, kind="stable").reset_index(drop=True)
    n = len(ordered)
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * validation_fraction))
    if n - n_test - n_val < 1:
        raise ValueError(f"{n} labelled rows are too few to split into train, validation and test")
    parts = [
        ordered.iloc[: n - n_val - n_test],
        ordered.iloc[n - n_val - n_test : n - n_test],
        ordered.iloc[n - n_test :],
    ]
    if max_rows is not None:
        shares = [1 - validation_fraction - test_fraction, validation_fraction, test_fraction]
        parts = [
            _thin(part, max(1, round(max_rows * share)), seed)
            for part, share in zip(parts, shares, strict=True)
        ]
    return Splits(*(part.reset_index(drop=True) for part in parts))


def _thin(part: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(part) <= rows:
        return part
    return part.sample(n=rows, random_state=seed).sort_index()
