"""The data gate on small frames: severity decides, reports name the problem and serialise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conveyor.core.validation import DataValidationError, ValidationReport, load_suite, validate_frame

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
