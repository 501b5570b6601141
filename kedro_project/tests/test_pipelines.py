"""The data_processing pipeline with the project's real GX suite, on frames made here."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from flight_frames import make_flights, make_weather
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from conveyor.core.validation import DataValidationError
from flight_delays.pipeline_registry import register_pipelines
from flight_delays.schema import FEATURES, LABEL

CONF = Path(__file__).parents[1] / "conf/base"
SUITES = {
    f"{name}_suite": json.loads((CONF / f"gx/{name}.json").read_text())
    for name in ("flights_partition", "weather_partition")
}
DATA_GATE = yaml.safe_load((CONF / "parameters_data_processing.yml").read_text())["data_gate"]
# A month of the size the gate's volume check accepts when there is no earlier month to compare.
ROWS = DATA_GATE["min_rows_per_month"] + 200
PARAMS = {
    "validation_fraction": 0.2,
    "test_fraction": 0.2,
    "max_rows": None,
    "seed": 0,
    "reference_sample_rows": 50,
}


def _run(
    flights: pd.DataFrame,
    partition: str = "2013-02",
    params: dict | None = None,
    weather: pd.DataFrame | None = None,
) -> dict:
    catalog = DataCatalog()
    catalog["flights"] = {partition: lambda: flights}
    catalog["weather"] = make_weather(flights) if weather is None else weather
    for name, suite in SUITES.items():
        catalog[name] = suite
    catalog["params:partition"] = partition
    catalog["params:data_gate"] = DATA_GATE
    catalog["params:data_processing"] = params or PARAMS
    outputs = SequentialRunner().run(register_pipelines()["data_processing"], catalog)
    return {name: outputs[name].load() for name in outputs}


def test_clean_partition_passes_the_gate_and_is_split() -> None:
    flights = make_flights(ROWS)
    out = _run(flights)
    assert out["partition_lineage"]["partition"] == "2013-02"
    assert out["partition_lineage"]["rows"] == len(flights)
    report = out["data_validation_report"]
    assert report["success"] is True
    assert report["dataset"] == "flights 2013-02 + weather 2013-02"
    # every expectation ran (the partition and the volume bounds were given) ...
    assert report["skipped"] == []
    assert report["evaluated"] == sum(len(s["expectations"]) for s in SUITES.values())
    # ... and the one cancelled flight is the only finding: a warning, not a failure
    assert [(f["dataset"], f["expectation"], f["column"], f["severity"]) for f in report["failures"]] == [
        ("flights 2013-02", "expect_column_values_to_not_be_null", "arr_delay", "warning")
    ]
    assert len(out["reference_sample"]) == 50
    assert list(out["eval_set"].columns)[: len(FEATURES) + 1] == [*FEATURES, LABEL]


def test_same_rows_give_the_same_data_hash_and_changed_rows_another() -> None:
    first = _run(make_flights(ROWS))["partition_lineage"]["data_hash"]
    assert _run(make_flights(ROWS))["partition_lineage"]["data_hash"] == first
    changed = make_flights(ROWS)
    changed.loc[5, "distance"] += 1
    assert _run(changed)["partition_lineage"]["data_hash"] != first


def test_unknown_origin_airport_stops_the_run_at_the_gate() -> None:
    flights = make_flights(ROWS)
    flights.loc[:9, "origin"] = "BOS"
    with pytest.raises(DataValidationError) as err:
        _run(flights)
    assert "expect_column_values_to_be_in_set on column 'origin'" in str(err.value)
    assert f"10 of {ROWS} rows" in str(err.value) and "BOS" in str(err.value)


def test_dew_point_above_the_temperature_stops_the_run_naming_the_weather() -> None:
    flights = make_flights(ROWS)
    weather = make_weather(flights)
    weather.loc[:2, "dewp"] = weather.loc[:2, "temp"] + 5
    with pytest.raises(DataValidationError) as err:
        _run(flights, weather=weather)
    assert "expect_column_pair_values_a_to_be_greater_than_b on table of weather 2013-02" in str(err.value)
    assert f"3 of {len(weather)} rows unexpected" in str(err.value)


def test_numbers_rendered_as_strings_by_an_orchestrator_are_accepted() -> None:
    params = {**PARAMS, "max_rows": "100", "seed": "0", "validation_fraction": "0.2"}
    out = _run(make_flights(ROWS), params=params)
    assert (len(out["validation_set"]), len(out["eval_set"]), len(out["reference_sample"])) == (20, 20, 50)
