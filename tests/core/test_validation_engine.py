"""The gate's GX engine: the same results as GX's stock pandas engine, for less copying."""

from __future__ import annotations

import json
import math
from typing import Any

import great_expectations as gx
import numpy as np
import pandas as pd
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.data_context.types.base import ProgressBarsConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.core.validation import validate_frame
from conveyor.core.validation_engine import GatePandasExecutionEngine

# Every path the gate's engine changes: column maps with and without nulls, row conditions (twice
# the same one), a missing column, table and multi-column expectations, parameters.
SUITE: dict[str, Any] = {
    "name": "engine",
    "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": {"$PARAMETER": "rows"}}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "delay"}, "severity": "warning"},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "delay", "min_value": -10}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {
                "column": "delay",
                "max_value": 60,
                "row_condition": "hour < 12",
                "condition_parser": "pandas",
            },
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {
                "column": "origin",
                "value_set": ["EWR", "JFK"],
                "row_condition": "hour < 12",
                "condition_parser": "pandas",
                "mostly": 0.9,
            },
            "severity": "warning",
            "notes": "mornings leave from the big two",
        },
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "origin", "regex": "^[A-Z]{3}$"},
        },
        {
            "type": "expect_column_values_to_be_in_type_list",
            "kwargs": {"column": "origin", "type_list": ["str"]},
        },
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["origin", "hour"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such_column"}},
    ],
}


def _stock_results(frame: pd.DataFrame, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What GX's own engine says, through its documented fluent path."""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("stock")
        .add_dataframe_asset("rows")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame.copy()})
    )
    result = batch.validate(
        gx.ExpectationSuite(**SUITE), result_format="BASIC", expectation_parameters=parameters
    )
    return sorted(_key(r) for r in result.results if not r.success)


def _key(result: Any) -> tuple[Any, ...]:
    details = {
        k: v
        for k, v in (result.result or {}).items()
        if k in {"element_count", "unexpected_count", "observed_value"}
    }
    examples = [v for v in (result.result or {}).get("partial_unexpected_list") or [] if not _null(v)]
    errored = bool((result.exception_info or {}).get("raised_exception")) or any(
        isinstance(i, dict) and i.get("raised_exception") for i in (result.exception_info or {}).values()
    )
    column = result.expectation_config.kwargs.get("column")
    return (
        result.expectation_config.type,
        str(column),
        json.dumps(details, default=str),
        json.dumps(examples[:10], default=str),
        errored,
    )


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _report_keys(frame: pd.DataFrame, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
    report = validate_frame(frame, SUITE, dataset="rows", parameters=parameters)
    return sorted(
        (
            f.expectation,
            str(f.column),
            json.dumps(
                {
                    k: v
                    for k, v in {
                        "element_count": f.element_count,
                        "unexpected_count": f.unexpected_count,
                        "observed_value": f.observed_value,
                    }.items()
                    if v is not None
                },
                default=str,
            ),
            json.dumps(f.examples, default=str),
            f.error is not None,
        )
        for f in report.failures
    )


rows = st.lists(
    st.tuples(
        st.sampled_from(["EWR", "JFK", "LGA", "ewr"]),
        st.integers(0, 23),
        st.one_of(st.none(), st.floats(-30, 120, allow_nan=False)),
    ),
    min_size=0,
    max_size=40,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, min_rows=st.integers(0, 30))
def test_the_gate_reports_what_the_stock_engine_finds(
    rows: list[tuple[str, int, float | None]], min_rows: int
) -> None:
    frame = pd.DataFrame(rows, columns=["origin", "hour", "delay"]).astype(
        {"hour": "int64", "delay": "float64"}
    )
    parameters = {"rows": min_rows}
    assert _report_keys(frame, parameters) == _stock_results(frame, parameters)


def test_a_column_metric_sees_only_its_column_and_each_condition_is_queried_once() -> None:
    engine = GatePandasExecutionEngine()
    frame = pd.DataFrame({"origin": ["EWR", "JFK", "LGA"], "hour": [5, 13, 8], "delay": [1.0, np.nan, 3.0]})
    engine.load_batch_data("batch", frame)
    kwargs = {
        "batch_id": "batch",
        "column": "origin",
        "row_condition": "hour < 12",
        "condition_parser": "pandas",
    }
    data, compute, accessor = engine.get_compute_domain(kwargs, MetricDomainTypes.COLUMN)
    assert list(data.columns) == ["origin"] and list(data["origin"]) == ["EWR", "LGA"]
    assert accessor == {"column": "origin"} and "column" not in compute
    first = engine.get_domain_records(compute)
    assert engine.get_domain_records(compute) is first  # the filter ran once for this condition
    assert list(first.columns) == ["origin", "hour", "delay"]  # other domains keep every column
    table, _, _ = engine.get_compute_domain({"batch_id": "batch"}, MetricDomainTypes.TABLE)
    assert list(table.columns) == ["origin", "hour", "delay"]
