"""Bad partitions stop `kedro run` with a message naming the problem, and nothing is registered.

Besides broken files (a missing column, text in a number column, no rows), physically impossible
partitions: each fault is planted in a real month of flights or weather and must stop the run
at the gate with a report naming the expectation and the column.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from flight_delays.data import flights_by_month, read_table
from tests.kedro.conftest import PROJECT, use_model, write_local

pytestmark = pytest.mark.integration


def _drop_carrier(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["carrier"])


def _null_target(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(arr_delay=np.nan)


def _text_target(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(arr_delay=frame["arr_delay"].map(lambda v: f"{v} min"))


def _no_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[:0]


def _set(column: str, value: object, rows: int | None = 5):
    """A fault in the first ``rows`` rows (all rows when None)."""

    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if column in frame and pd.api.types.is_integer_dtype(frame[column]) and isinstance(value, float):
            frame[column] = frame[column].astype("float64")
        frame.loc[frame.index[:rows] if rows else frame.index, column] = value
        return frame

    return corrupt


def _duplicate_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.head(40)], ignore_index=True)


def _carrier_as_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(carrier=frame["carrier"].astype("category").cat.codes.astype("int64"))


def _supersonic(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[:9, "air_time"] = frame.loc[:9, "distance"] / 1000 * 60  # 1000 mph
    return frame


def _pressure_in_inches(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(pressure=frame["pressure"] / 33.864)


def _wind_in_knots_x100(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(wind_speed=frame["wind_speed"] * 100)


FLIGHTS, WEATHER = "flights 2013-02", "weather 2013-02"
# name: (table, fault, fragments the error must contain; the first one also in the saved report)
CASES = {
    "missing_column": ("flights", _drop_carrier, ["expect_column_to_exist on column 'carrier'"]),
    "all_null_target": (
        "flights",
        _null_target,
        ["expect_column_proportion_of_non_null_values_to_be_between on column 'arr_delay'", "observed 0"],
    ),
    "wrong_dtype": (
        "flights",
        _text_target,
        ["expect_column_values_to_be_in_type_list on column 'arr_delay'", "rows unexpected (100.00%)", "min"],
    ),
    "empty_partition": ("flights", _no_rows, ["expect_table_row_count_to_be_between on table", "observed 0"]),
    "negative_distance": (
        "flights",
        _set("distance", -100),
        [f"expect_column_values_to_be_between on column 'distance' of {FLIGHTS}", "5 of 24951", "-100"],
    ),
    "air_time_zero": (
        "flights",
        _set("air_time", 0.0),
        [f"expect_column_values_to_be_between on column 'air_time' of {FLIGHTS}", "strict_min=true"],
    ),
    "dep_time_2500": (
        "flights",
        _set("dep_time", 2500.0),
        [f"expect_column_values_to_be_between on column 'dep_time' of {FLIGHTS}", "2500"],
    ),
    "dep_time_minute_75": (
        "flights",
        _set("dep_time", 1275.0),
        [
            f"expect_column_values_to_be_null on column 'dep_time' of {FLIGHTS}",
            "dep_time % 100 >= 60",
            "1275",
        ],
    ),
    "minute_75": (
        "flights",
        _set("minute", 75),
        [f"expect_column_values_to_be_between on column 'minute' of {FLIGHTS}", "75"],
    ),
    "february_30": (
        "flights",
        _set("day", 30),
        [f"expect_column_values_to_be_between on column 'day' of {FLIGHTS}", "month == 2"],
    ),
    "delay_of_two_days": (
        "flights",
        _set("arr_delay", 2880.0),
        [f"expect_column_values_to_be_between on column 'arr_delay' of {FLIGHTS}", "2880"],
    ),
    "supersonic_flight": (
        "flights",
        _supersonic,
        [
            f"expect_column_values_to_be_null on column 'air_time' of {FLIGHTS}",
            "distance / air_time * 60 < 40",
        ],
    ),
    "carrier_of_40_chars": (
        "flights",
        _set("carrier", "X" * 40, rows=2),
        [f"expect_column_values_to_match_regex on column 'carrier' of {FLIGHTS}", "XXXXXXXX"],
    ),
    "unknown_origin": (
        "flights",
        _set("origin", "BOS"),
        [f"expect_column_values_to_be_in_set on column 'origin' of {FLIGHTS}", "BOS"],
    ),
    "numbers_in_a_string_column": (
        "flights",
        _carrier_as_numbers,
        [f"expect_column_values_to_be_in_type_list on column 'carrier' of {FLIGHTS}", "observed 'int64'"],
    ),
    # Parquet cannot hold numbers among strings; a CSV source delivers them as digit strings.
    "digits_as_destination": (
        "flights",
        _set("dest", "123", rows=3),
        [f"expect_column_values_to_match_regex on column 'dest' of {FLIGHTS}", "3 of 24951 rows", "123"],
    ),
    "duplicated_rows": (
        "flights",
        _duplicate_rows,
        [f"expect_compound_columns_to_be_unique on table of {FLIGHTS}", "80 of 24991 rows"],
    ),
    "month_not_the_partition": (
        "flights",
        _set("month", 3, rows=None),
        [f"expect_column_values_to_be_in_set on column 'month' of {FLIGHTS}", "value_set=[2]"],
    ),
    "humidity_140": (
        "weather",
        _set("humid", 140.0),
        [f"expect_column_values_to_be_between on column 'humid' of {WEATHER}", "140"],
    ),
    "pressure_in_inches": (
        "weather",
        _pressure_in_inches,
        [f"expect_column_values_to_be_between on column 'pressure' of {WEATHER}", "min_value=900"],
    ),
    "wind_feed_broken": (
        "weather",
        _wind_in_knots_x100,
        [
            f"[CRITICAL] expect_column_values_to_be_between on column 'wind_speed' of {WEATHER}",
            "mostly=0.999",
        ],
    ),
}


def _run(conf: Path, name: str, runtime_params: dict) -> Exception:
    """Run the project as model ``name`` (its own experiment), expecting it to fail."""
    use_model(conf, name)
    bootstrap_project(PROJECT)
    with (
        KedroSession.create(
            project_path=PROJECT, conf_source=str(conf), runtime_params=runtime_params
        ) as session,
        pytest.raises(Exception) as err,
    ):
        session.run()
    return err.value


def _failed_run(name: str):
    runs = mlflow.search_runs(experiment_names=[name], output_format="list")
    assert len(runs) == 1
    return runs[0]


def _use_partitions(conf: Path, folder: Path, months: dict[str, pd.DataFrame], weather: pd.DataFrame) -> None:
    """The catalog reads these month files and this weather table instead of the package's."""
    folder.mkdir()
    for month, frame in months.items():
        frame.to_parquet(folder / f"{month}.parquet")
    weather.to_parquet(folder.parent / "weather.parquet")
    write_local(
        conf,
        "catalog",
        {
            "flights": {
                "type": "partitions.PartitionedDataset",
                "path": str(folder),
                "dataset": "pandas.ParquetDataset",
                "filename_suffix": ".parquet",
            },
            "weather": {"type": "pandas.ParquetDataset", "filepath": str(folder.parent / "weather.parquet")},
        },
    )


def _assert_stopped_at_the_gate(error: Exception, name: str, expected: list[str], data_root: Path) -> None:
    assert type(error).__name__ == "DataValidationError"
    for fragment in expected:
        assert fragment in str(error)
    client = mlflow.MlflowClient()
    assert client.search_model_versions(f"name='{name}'") == []
    run = _failed_run(name)
    assert run.info.status == "FAILED"
    report = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/validation/data_validation_report.json")
    assert report["success"] is False and report["critical_failures"] >= 1
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/validation/data_validation_report.txt")
    assert expected[0] in text
    # Nothing after the gate ran: no model input, no model (the test's data_root is tmp/data).
    assert not (data_root / "05_model_input").exists()
    assert not (data_root / "06_models").exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_partition_fails_at_the_gate_and_registers_nothing(
    case: str, kedro_conf: Path, tmp_path: Path, mlflow_uri: str
) -> None:
    table, corrupt, expected = CASES[case]
    flights, weather = flights_by_month()["2013-02"](), read_table("weather")
    if table == "flights":
        flights = corrupt(flights)
    else:
        february = (weather["year"] == 2013) & (weather["month"] == 2)
        weather = pd.concat([weather[~february], corrupt(weather[february].reset_index(drop=True))])
    _use_partitions(kedro_conf, tmp_path / "partitions", {"2013-02": flights}, weather)
    name = f"bad_{case}"
    error = _run(kedro_conf, name, {"partition": "2013-02"})
    _assert_stopped_at_the_gate(error, name, expected, tmp_path / "data")


def test_month_with_a_tenth_of_the_usual_rows_fails_against_the_earlier_months(
    kedro_conf: Path, tmp_path: Path, mlflow_uri: str
) -> None:
    months = flights_by_month()
    history = {m: months[m]() for m in ("2013-01", "2013-02")}
    thin = months["2013-03"]().sample(frac=0.1, random_state=0).sort_index().reset_index(drop=True)
    _use_partitions(kedro_conf, tmp_path / "partitions", {**history, "2013-03": thin}, read_table("weather"))
    name = "bad_thin_month"
    error = _run(kedro_conf, name, {"partition": "2013-03"})
    # 0.5 x the median of January (27,004) and February (24,951) = 12,988
    _assert_stopped_at_the_gate(
        error,
        name,
        ["expect_table_row_count_to_be_between on table of flights 2013-03", "observed 2883", "12988"],
        tmp_path / "data",
    )


@pytest.mark.parametrize(
    ("partition", "message"),
    [
        ("2013-13", "unknown partition '2013-13': expected a month as YYYY-MM with MM in 01..12"),
        ("2014-01", "unknown partition 2014-01: the flights source holds 2013-01..2013-12"),
    ],
)
def test_unknown_partition_name_is_refused_and_registers_nothing(
    partition: str, message: str, kedro_conf: Path, mlflow_uri: str
) -> None:
    name = f"unknown_{partition}"
    error = _run(kedro_conf, name, {"partition": partition})
    assert type(error).__name__ == "UnknownPartitionError"
    assert message in str(error)
    assert mlflow.MlflowClient().search_model_versions(f"name='{name}'") == []
    assert _failed_run(name).info.status == "FAILED"


def test_every_real_month_passes_the_same_gate_with_only_warnings() -> None:
    """The counterpart of the faults above: none of the 12 real months of 2013 trips the gate,
    each checked against the months before it, as `kedro run` does."""
    from flight_delays.pipelines.data_processing.nodes import gate_parameters, validate_partition

    suites = [
        json.loads((PROJECT / f"conf/base/gx/{n}_partition.json").read_text()) for n in ("flights", "weather")
    ]
    gate = yaml.safe_load((PROJECT / "conf/base/parameters_data_processing.yml").read_text())["data_gate"]
    months, weather = flights_by_month(), read_table("weather")
    warnings = {}
    for month in sorted(months):
        parameters = gate_parameters(months, month, gate)
        _, report = validate_partition(months[month](), weather, *suites, parameters, month)
        assert report["success"] and report["skipped"] == [], (month, report)
        assert parameters["row_count_max"] is None if month == "2013-01" else parameters["row_count_max"] > 0
        warnings[month] = {(f["column"], f["expectation"]) for f in report["failures"]}
    # The one 1048 mph wind reading (an hour without flights) is reported, not fatal.
    assert ("wind_speed", "expect_column_values_to_be_between") in warnings["2013-02"]
    assert all(("arr_delay", "expect_column_values_to_not_be_null") in w for w in warnings.values())
