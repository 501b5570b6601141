"""Features and the time-ordered split."""

from __future__ import annotations

import pandas as pd
import pytest
from flight_frames import make_weather

from flight_delays.data import join_weather
from flight_delays.features import build_features, split_by_time
from flight_delays.schema import FEATURES, LABEL, TIME


def test_features_follow_the_contract(flights: pd.DataFrame) -> None:
    model_input = build_features(join_weather(flights, make_weather(flights)))
    assert list(model_input.columns) == [*FEATURES, LABEL, TIME]
    assert len(model_input) == len(flights) - 1  # the cancelled flight has no label
    assert model_input["hour"].dtype == "int64" and model_input["distance"].dtype == "float64"
    assert str(model_input[TIME].dt.tz) == "UTC"
    # 2013-02-04 was a Monday
    monday = build_features(join_weather(flights.assign(day=4), make_weather(flights.assign(day=4))))
    assert set(monday["day_of_week"]) == {0}
    expected = (flights["arr_delay"].dropna() > 15).astype(int).tolist()
    assert model_input[LABEL].tolist() == expected


def _model_input(flights: pd.DataFrame) -> pd.DataFrame:
    return build_features(join_weather(flights, make_weather(flights)))


def test_split_is_time_ordered(flights: pd.DataFrame) -> None:
    splits = split_by_time(_model_input(flights), validation_fraction=0.2, test_fraction=0.2)
    assert splits.train[TIME].max() <= splits.validation[TIME].min()
    assert splits.validation[TIME].max() <= splits.test[TIME].min()
    assert len(splits.train) + len(splits.validation) + len(splits.test) == len(flights) - 1


def test_held_out_rows_stay_held_out_whatever_max_rows(flights: pd.DataFrame) -> None:
    full = split_by_time(_model_input(flights), 0.2, 0.2)
    small = split_by_time(_model_input(flights), 0.2, 0.2, max_rows=100, seed=3)
    assert len(small.train) == 60 and len(small.validation) == 20 and len(small.test) == 20
    assert small.train[TIME].max() <= full.test[TIME].min()
    assert small.test[TIME].min() >= full.test[TIME].min()


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.2), (0.5, 0.5), (0.2, 1.2)])
def test_bad_fractions_are_refused(flights: pd.DataFrame, val: float, test: float) -> None:
    with pytest.raises(ValueError, match="must be in"):
        split_by_time(_model_input(flights), val, test)


def test_too_few_rows_to_split_is_refused(flights: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="too few to split"):
        split_by_time(_model_input(flights).head(2), 0.3, 0.3)
