"""The feature encoder: fixed width, finite numbers, training statistics only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bike_rentals.features import FeatureEncoder, FeatureError
from bike_rentals.schema import CATEGORIES, FLAGS, INPUTS, NUMERIC


def test_encoded_columns_follow_the_schema(hours: pd.DataFrame) -> None:
    encoder = FeatureEncoder.fit(hours)
    matrix = encoder.transform(hours)
    width = sum(len(v) for v in CATEGORIES.values()) + len(FLAGS) + len(NUMERIC)
    assert matrix.shape == (len(hours), width) == (len(hours), len(encoder.columns))
    assert matrix.dtype == np.float32
    hr_block = matrix[:, [encoder.columns.index(f"hr={h}") for h in range(24)]]
    assert (hr_block.argmax(axis=1) == hours["hr"].to_numpy()).all()


def test_standardisation_uses_the_rows_it_was_fitted_on(hours: pd.DataFrame) -> None:
    train, later = hours.iloc[:300], hours.iloc[300:]
    encoder = FeatureEncoder.fit(train)
    temp = encoder.transform(train)[:, encoder.columns.index("temp")]
    assert abs(temp.mean()) < 1e-5 and abs(temp.std() - 1) < 1e-4
    assert encoder.means["temp"] == pytest.approx(train["temp"].mean())
    assert encoder.means["temp"] != pytest.approx(later["temp"].mean())


def test_levels_outside_the_vocabulary_encode_as_zeros_and_text_numbers_are_read(hours: pd.DataFrame) -> None:
    encoder = FeatureEncoder.fit(hours)
    odd = hours.head(2).copy()
    odd["weathersit"] = ["hail", "clear"]
    odd["hr"] = ["7", 7.0]
    matrix = encoder.transform(odd)
    weather = [encoder.columns.index(f"weathersit={w}") for w in CATEGORIES["weathersit"]]
    assert matrix[0, weather].sum() == 0 and matrix[1, weather].sum() == 1
    assert matrix[:, encoder.columns.index("hr=7")].tolist() == [1.0, 1.0]


def test_missing_columns_and_values_are_named(hours: pd.DataFrame) -> None:
    encoder = FeatureEncoder.fit(hours)
    with pytest.raises(FeatureError, match="'temp'"):
        encoder.transform(hours.drop(columns="temp"))
    broken = hours.copy()
    broken.loc[3, "hum"] = np.nan
    with pytest.raises(FeatureError, match="missing values in \\['hum'\\]"):
        encoder.transform(broken)


def test_round_trip_through_plain_values(hours: pd.DataFrame) -> None:
    encoder = FeatureEncoder.fit(hours)
    again = FeatureEncoder.from_dict(encoder.to_dict())
    assert np.array_equal(again.transform(hours), encoder.transform(hours))


_valid_row = st.fixed_dictionaries(
    {
        **{name: st.sampled_from(levels) for name, levels in CATEGORIES.items()},
        **{name: st.integers(0, 1) for name in FLAGS},
        **{name: st.floats(0.0, 1.0, allow_nan=False) for name in NUMERIC},
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fit_rows=st.lists(_valid_row, min_size=1, max_size=40), rows=st.lists(_valid_row, min_size=1, max_size=40)
)
def test_any_valid_rows_encode_to_finite_numbers_of_fixed_width(
    fit_rows: list[dict], rows: list[dict]
) -> None:
    """Whatever the training rows (one row, constant readings) and whatever valid rows follow,
    the matrix keeps one row per input, has the schema's width, is finite, and each
    categorical block holds exactly one 1."""
    encoder = FeatureEncoder.fit(pd.DataFrame(fit_rows, columns=list(INPUTS)))
    frame = pd.DataFrame(rows, columns=list(INPUTS))
    matrix = encoder.transform(frame)
    assert matrix.shape == (len(frame), len(encoder.columns))
    assert np.isfinite(matrix).all()
    for name, levels in CATEGORIES.items():
        block = [encoder.columns.index(f"{name}={level}") for level in levels]
        assert (matrix[:, block].sum(axis=1) == 1).all()
