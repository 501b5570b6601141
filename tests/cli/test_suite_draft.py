"""The suite drafter on tables Hypothesis makes: a draft always accepts the sample it came from,
and refuses that sample once a column is gone or changes type."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes

from conveyor.core.validation import validate_frame
from conveyor.project.suite_draft import DraftError, draft_suite

_finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
tables = data_frames(
    [
        column("count", elements=st.integers(-1000, 1000), dtype="int64"),
        column("reading", elements=_finite | st.just(float("nan")), dtype="float64"),
        column("colour", elements=st.sampled_from(["red", "green", "blue", None]), dtype=object),
        column("flag", elements=st.booleans(), dtype=bool),
        column("note", elements=st.text(max_size=5) | st.none(), dtype=object),
    ],
    index=range_indexes(min_size=1, max_size=40),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables)
def test_a_draft_accepts_its_sample_and_refuses_a_changed_schema(frame: pd.DataFrame) -> None:
    suite = draft_suite(frame, "table", label="count")
    assert json.loads(json.dumps(suite)) == suite  # what init writes to disk is the suite
    report = validate_frame(frame, suite)
    assert report.success and not report.failures, report.to_text()
    assert {e["severity"] for e in suite["expectations"]} <= {"critical", "warning"}
    missing = {
        (f.expectation, f.column) for f in validate_frame(frame.drop(columns=["flag"]), suite).critical
    }
    assert ("expect_column_to_exist", "flag") in missing
    retyped = frame.assign(count=frame["count"].astype(float))
    assert ("expect_column_values_to_be_in_type_list", "count") in {
        (f.expectation, f.column) for f in validate_frame(retyped, suite).critical
    }


def test_an_empty_sample_or_a_missing_label_is_refused() -> None:
    with pytest.raises(DraftError, match="no rows or no columns"):
        draft_suite(pd.DataFrame({"a": []}), "t")
    with pytest.raises(DraftError, match="the label 'y' is not a column"):
        draft_suite(pd.DataFrame({"a": [1]}), "t", label="y")
