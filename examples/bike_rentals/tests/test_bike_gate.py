"""The data gate with the project's real suite: clean months pass, each kind of breakage stops the run."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from bike_frames import make_hours

from bike_rentals.datasets import BikeshareMonths
from bike_rentals.pipelines.data_processing import nodes
from conveyor.core.validation import DataValidationError


def _gate(rows: pd.DataFrame, suite: dict[str, Any], parameters: dict[str, Any], partitions: str = "2011-02"):
    gate_parameters = nodes.gate_parameters(partitions, parameters["data_gate"])
    return nodes.validate_partition(rows, suite, gate_parameters, partitions)


def _critical(rows: pd.DataFrame, suite: dict[str, Any], parameters: dict[str, Any], **kwargs: Any) -> set:
    with pytest.raises(DataValidationError) as failure:
        _gate(rows, suite, parameters, **kwargs)
    return {(f.expectation, f.column) for f in failure.value.report.critical}


@pytest.mark.parametrize("month", [f"2011-{m:02d}" for m in range(1, 13)])
def test_every_real_month_passes(month: str, suite: dict, parameters: dict) -> None:
    rows = BikeshareMonths().load()[month]()
    passed, report = _gate(rows, suite, parameters, partitions=month)
    assert passed is rows
    assert report["success"] is True and report["skipped"] == []
    warnings = {(f["expectation"], f["column"]) for f in report["failures"]}
    # the one real finding of 2011: a humidity sensor reading 0% all day on 2011-03-10
    assert warnings == ({("expect_column_values_to_be_between", "hum")} if month == "2011-03" else set())


def test_rows_of_another_month_are_refused(suite: dict, parameters: dict) -> None:
    found = _critical(make_hours("2011-03-01", days=28), suite, parameters, partitions="2011-02")
    assert found == {
        ("expect_column_values_to_match_regex", "timestamp"),
        ("expect_column_values_to_be_in_set", "mnth"),
    }


def test_a_repeated_hour_is_refused(suite: dict, parameters: dict) -> None:
    rows = make_hours()
    rows = pd.concat([rows, rows.iloc[[10]]], ignore_index=True)
    assert ("expect_column_values_to_be_unique", "timestamp") in _critical(rows, suite, parameters)


def test_too_few_hours_is_critical_and_a_few_missing_is_a_warning(suite: dict, parameters: dict) -> None:
    rows = make_hours()
    assert _critical(rows.iloc[:300], suite, parameters) == {("expect_table_row_count_to_be_between", None)}
    _, report = _gate(rows.iloc[:600], suite, parameters)  # 89% of February's 672 hours
    assert [(f["expectation"], f["severity"]) for f in report["failures"]] == [
        ("expect_table_row_count_to_be_between", "warning")
    ]


@pytest.mark.parametrize(
    ("column", "value", "expectation"),
    [
        ("season", 3, "expect_column_pair_values_to_be_in_set"),  # summer in February (a pair: no one column)
        ("workingday", 0, "expect_column_values_to_be_null"),  # a plain Tuesday called a day off
        ("bikers", 999, "expect_column_values_to_be_null"),  # no longer casual + registered
        ("temp", 1.4, "expect_column_values_to_be_between"),  # outside the normalised range
        ("weathersit", "sunny", "expect_column_values_to_be_in_set"),
        ("hr", 24, "expect_column_values_to_be_between"),
    ],
)
def test_inconsistent_values_are_critical(
    column: str, value: Any, expectation: str, suite: dict, parameters: dict
) -> None:
    rows = make_hours()  # 2011-02-01 is a Tuesday
    rows.loc[0, column] = value
    named = None if expectation.startswith("expect_column_pair") else column
    assert (expectation, named) in _critical(rows, suite, parameters)


def test_a_few_missing_readings_warn_and_many_stop(suite: dict, parameters: dict) -> None:
    rows = make_hours()
    rows.loc[:9, "windspeed"] = None
    _, report = _gate(rows, suite, parameters)
    assert [(f["expectation"], f["column"], f["severity"]) for f in report["failures"]] == [
        ("expect_column_values_to_not_be_null", "windspeed", "warning")
    ]
    rows.loc[:99, "windspeed"] = None
    found = _critical(rows, suite, parameters)
    assert found == {("expect_column_proportion_of_non_null_values_to_be_between", "windspeed")}
