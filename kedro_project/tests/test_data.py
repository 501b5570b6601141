"""Partition names, month selection and the weather join on small frames made here."""

from __future__ import annotations

import pandas as pd
import pytest

from flight_delays.data import UnknownPartitionError, join_weather, parse_partition, select_months


@pytest.mark.parametrize(
    ("spec", "months"),
    [
        ("2013-01", ["2013-01"]),
        ("2013-03,2013-01", ["2013-01", "2013-03"]),
        ("2013-01+2013-02", ["2013-01", "2013-02"]),
        ("2012-11..2013-02", ["2012-11", "2012-12", "2013-01", "2013-02"]),
        (["2013-02", "2013-01..2013-02"], ["2013-01", "2013-02"]),
    ],
)
def test_partition_names(spec, months) -> None:
    assert parse_partition(spec) == months


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("2013-13", "unknown partition '2013-13'"),
        ("2013-1", "unknown partition '2013-1'"),
        ("january", "unknown partition 'january'"),
        ("2013-03..2013-01", "the end is before the start"),
        ("", "empty partition name"),
    ],
)
def test_malformed_partition_names_are_refused(spec, message) -> None:
    with pytest.raises(UnknownPartitionError, match=message):
        parse_partition(spec)


def _source() -> dict:
    frames = {
        "2013-01": pd.DataFrame({"month": [1, 1], "v": [1, 2]}),
        "2013-02": pd.DataFrame({"month": [2], "v": [3]}),
    }
    return {k: (lambda f=f: f) for k, f in frames.items()}


def test_select_months_concatenates_requested_months_only() -> None:
    rows = select_months(_source(), "2013-01..2013-02")
    assert rows["v"].tolist() == [1, 2, 3]
    assert select_months(_source(), "2013-02")["v"].tolist() == [3]


def test_months_absent_from_the_source_are_named() -> None:
    with pytest.raises(UnknownPartitionError, match=r"unknown partition 2014-01: .*2013-01\.\.2013-02"):
        select_months(_source(), "2013-02,2014-01")


def test_weather_join_keeps_one_row_per_flight_and_leaves_gaps_nan() -> None:
    flights = pd.DataFrame(
        {"origin": ["EWR", "JFK"], "year": [2013] * 2, "month": [1] * 2, "day": [1] * 2, "hour": [5, 6]}
    )
    weather = pd.DataFrame(
        {
            "origin": ["EWR", "EWR"],  # a duplicated key, as in the real weather table
            "year": [2013] * 2,
            "month": [1] * 2,
            "day": [1] * 2,
            "hour": [5, 5],
            **{
                c: [40.0, 99.0]
                for c in ("temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib")
            },
        }
    )
    joined = join_weather(flights, weather)
    assert len(joined) == 2
    assert joined.loc[0, "temp"] == 40.0
    assert pd.isna(joined.loc[1, "temp"])
