"""The data_processing pipeline with the project's real GX suite, on frames made here."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from flight_frames import make_flights, make_weather
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from conveyor.core.validation import DataValidationError
from flight_delays.pipeline_registry import register_pipelines
from flight_delays.schema import FEATURES, LABEL

SUITE = json.loads((Path(__file__).parents[1] / "conf/base/gx/flights_partition.json").read_text())
PARAMS = {
    "validation_fraction": 0.2,
    "test_fraction": 0.2,
    "max_rows": None,
    "seed": 0,
    "reference_sample_rows": 50,
}


def _run(flights: pd.DataFrame, partition: str = "2013-02", params: dict | None = None) -> dict:
    catalog = DataCatalog()
    catalog["flights"] = {partition: lambda: flights}
    catalog["weather"] = make_weather(flights)
    catalog["flights_partition_suite"] = SUITE
    catalog["params:partition"] = partition
    catalog["params:data_processing"] = params or PARAMS
    outputs = SequentialRunner().run(register_pipelines()["data_processing"], catalog)
    return {name: outputs[name].load() for name in outputs}


def test_clean_partition_passes_the_gate_and_is_split() -> None:
    flights = make_flights()
    out = _run(flights)
    assert out["partition_lineage"]["partition"] == "2013-02"
    assert out["partition_lineage"]["rows"] == len(flights)
    report = out["data_validation_report"]
    assert report["success"] is True
    # the one cancelled flight is a warning, not a failure
    assert [f["column"] for f in report["failures"]] == ["arr_delay"]
    assert report["failures"][0]["severity"] == "warning"
    assert len(out["reference_sample"]) == 50
    assert list(out["eval_set"].columns)[: len(FEATURES) + 1] == [*FEATURES, LABEL]


def test_same_rows_give_the_same_data_hash_and_changed_rows_another() -> None:
    first = _run(make_flights())["partition_lineage"]["data_hash"]
    assert _run(make_flights())["partition_lineage"]["data_hash"] == first
    changed = make_flights()
    changed.loc[5, "distance"] += 1
    assert _run(changed)["partition_lineage"]["data_hash"] != first


def test_unknown_origin_airport_stops_the_run_at_the_gate() -> None:
    flights = make_flights()
    flights.loc[:9, "origin"] = "BOS"
    with pytest.raises(DataValidationError) as err:
        _run(flights)
    assert "expect_column_values_to_be_in_set on column 'origin'" in str(err.value)
    assert "10 of 400 rows" in str(err.value) and "BOS" in str(err.value)


def test_numbers_rendered_as_strings_by_an_orchestrator_are_accepted() -> None:
    params = {**PARAMS, "max_rows": "100", "seed": "0", "validation_fraction": "0.2"}
    out = _run(make_flights(), params=params)
    assert (len(out["validation_set"]), len(out["eval_set"]), len(out["reference_sample"])) == (20, 20, 50)
