"""The data gate on small frames: severity decides, reports name the problem and serialise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conveyor.core.validation import (
    DataValidationError,
    ValidationReport,
    load_suite,
    row_count_bounds,
    validate_frame,
)

SUITE = {
    "name": "toy",
    "expectations": [
        {"type": "expect_column_to_exist", "kwargs": {"column": "delay"}, "severity": "critical"},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}, "severity": "critical"},
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "origin", "value_set": ["EWR", "JFK", "LGA"]},
            "severity": "critical",
        },
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "delay"}, "severity": "warning"},
        {
            "type": "expect_column_quantile_values_to_be_between",
            "kwargs": {
                "column": "delay",
                "quantile_ranges": {"quantiles": [0.5], "value_ranges": [[-100, 100]]},
            },
            "severity": "warning",
        },
    ],
}


def _frame(origins: list[str], delays: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame({"origin": origins, "delay": pd.Series(delays, dtype="float64")})


def test_clean_frame_passes_without_failures() -> None:
    report = validate_frame(_frame(["EWR", "JFK"], [1.0, 30.0]), SUITE, dataset="toy rows")
    assert report.success
    assert report.failures == []
    assert (report.evaluated, report.passed, report.row_count) == (5, 5, 2)
    assert "PASSED" in report.to_text()


def test_warning_is_reported_but_does_not_fail_the_gate() -> None:
    report = validate_frame(_frame(["EWR", "JFK", "LGA"], [1.0, None, 3.0]), SUITE)
    assert report.success
    assert [w.expectation for w in report.warnings] == ["expect_column_values_to_not_be_null"]
    warning = report.warnings[0]
    assert (warning.column, warning.unexpected_count, warning.element_count) == ("delay", 1, 3)
    report.raise_for_critical()  # warnings never raise


def test_critical_failure_names_expectation_rows_and_examples() -> None:
    report = validate_frame(_frame(["EWR", "XXX", "YYY", "JFK"], [1.0, 2.0, 3.0, 4.0]), SUITE)
    assert not report.success
    [failure] = report.critical
    assert failure.expectation == "expect_column_values_to_be_in_set"
    assert failure.unexpected_count == 2
    assert sorted(failure.examples) == ["XXX", "YYY"]
    with pytest.raises(DataValidationError) as err:
        report.raise_for_critical()
    assert err.value.report is report
    message = str(err.value)
    assert "FAILED" in message and "'origin'" in message and "2 of 4 rows" in message and "XXX" in message


def test_missing_column_is_critical_and_says_which() -> None:
    report = validate_frame(pd.DataFrame({"origin": ["EWR"]}), SUITE)
    assert not report.success
    assert any(f.expectation == "expect_column_to_exist" and f.column == "delay" for f in report.critical)
    assert "column 'delay'" in report.to_text()


def test_empty_frame_fails_the_row_count() -> None:
    report = validate_frame(_frame([], []), SUITE)
    assert [f.expectation for f in report.critical] == ["expect_table_row_count_to_be_between"]
    assert report.critical[0].observed_value == 0


def test_report_is_plain_json_even_with_numpy_values_and_round_trips() -> None:
    # The quantile expectation puts numpy.bool_ into GX results (a known GX serialisation bug).
    frame = _frame(["EWR", "LGA", "JFK"], [np.float64(500.0), 600.0, None])
    report = validate_frame(frame, SUITE)
    text = json.dumps(report.to_dict())
    data = json.loads(text)
    assert data["success"] is True and data["warning_failures"] == 2 and data["critical_failures"] == 0
    again = ValidationReport.from_dict(data)
    assert again.to_text() == report.to_text()


def test_suite_without_expectations_is_refused(tmp_path) -> None:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"name": "empty", "expectations": []}))
    with pytest.raises(ValueError, match="has no expectations"):
        validate_frame(_frame(["EWR"], [1.0]), load_suite(path))


PARAMETRISED = {
    "name": "volume",
    "expectations": [
        {"type": "expect_column_to_exist", "kwargs": {"column": "origin"}, "severity": "critical"},
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": {"$PARAMETER": "rows_min"}, "max_value": {"$PARAMETER": "rows_max"}},
            "severity": "critical",
            "notes": "volume against earlier partitions",
        },
    ],
}


def test_parameters_fill_thresholds_and_the_report_says_why() -> None:
    frame = _frame(["EWR", "JFK"], [1.0, 2.0])
    report = validate_frame(frame, PARAMETRISED, parameters={"rows_min": 5, "rows_max": None})
    [failure] = report.critical
    assert (failure.expectation, failure.observed_value, failure.kwargs["min_value"]) == (
        "expect_table_row_count_to_be_between",
        2,
        5,
    )
    assert "-- volume against earlier partitions" in failure.describe()
    assert validate_frame(frame, PARAMETRISED, parameters={"rows_min": 1, "rows_max": 2}).success


def test_expectation_without_its_parameter_is_skipped_and_listed_never_silent() -> None:
    report = validate_frame(_frame(["EWR"], [1.0]), PARAMETRISED, parameters={"rows_min": 1})
    assert report.success and report.evaluated == 1
    assert report.skipped == [
        "expect_table_row_count_to_be_between on table: no value for parameter rows_max"
    ]
    assert "[SKIPPED] expect_table_row_count_to_be_between on table" in report.to_text()
    assert ValidationReport.from_dict(json.loads(report.to_json())).skipped == report.skipped


def test_suite_whose_every_expectation_lacks_a_parameter_is_refused() -> None:
    only_volume = {**PARAMETRISED, "expectations": PARAMETRISED["expectations"][1:]}
    with pytest.raises(ValueError, match="every expectation needs a parameter"):
        validate_frame(_frame(["EWR"], [1.0]), only_volume)


def test_row_condition_expectation_reports_its_condition() -> None:
    suite = {
        "name": "clock",
        "expectations": [
            {
                "type": "expect_column_values_to_be_null",
                "kwargs": {
                    "column": "delay",
                    "row_condition": "delay % 100 >= 60",
                    "condition_parser": "pandas",
                },
                "severity": "critical",
            }
        ],
    }
    [failure] = validate_frame(_frame(["EWR", "JFK", "LGA"], [1230.0, 1275.0, None]), suite).critical
    assert failure.examples == [1275.0]
    assert "row_condition='delay % 100 >= 60'" in failure.describe()
    assert "condition_parser" not in failure.describe()


def test_combined_report_fails_on_any_critical_and_names_each_dataset() -> None:
    clean = validate_frame(_frame(["EWR"], [1.0]), SUITE, dataset="flights 2013-02")
    broken = validate_frame(_frame(["BOS"], [None]), SUITE, dataset="weather 2013-02")
    combined = ValidationReport.combine([clean, broken])
    assert not combined.success
    assert (combined.suite, combined.dataset) == ("toy + toy", "flights 2013-02 + weather 2013-02")
    assert (combined.evaluated, combined.passed) == (10, 10 - len(broken.failures))
    assert [f.dataset for f in combined.failures] == ["weather 2013-02"] * len(broken.failures)
    assert combined.failures[0].severity == "critical"
    assert "column 'origin' of weather 2013-02" in combined.to_text()
    assert ValidationReport.from_dict(combined.to_dict()).to_text() == combined.to_text()
    with pytest.raises(ValueError, match="no reports"):
        ValidationReport.combine([])


def test_row_count_bounds_follow_the_median_of_earlier_partitions() -> None:
    assert row_count_bounds([27004, 24951, 28834], 1, low=0.5, high=2.0, minimum=1000) == (13502, 54008)
    assert row_count_bounds([100, 300], 2, low=0.5, high=2.0, minimum=10) == (200, 800)
    # nothing to compare a first partition with: only the floor, no ceiling
    assert row_count_bounds([], 3, low=0.5, high=2.0, minimum=1000) == (3000, None)
    # the floor wins over a history of tiny partitions
    assert row_count_bounds([10, 12], 1, low=0.5, high=2.0, minimum=1000) == (1000, 22)
    with pytest.raises(ValueError, match=r"low=1\.5"):
        row_count_bounds([10], 1, low=1.5, high=2.0, minimum=1)
    with pytest.raises(ValueError, match="periods"):
        row_count_bounds([10], 0, low=0.5, high=2.0, minimum=1)
