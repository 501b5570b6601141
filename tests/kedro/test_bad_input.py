"""Bad partitions stop `kedro run` with a message naming the problem, and nothing is registered."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from flight_delays.data import flights_by_month
from tests.kedro.conftest import PROJECT, write_local

pytestmark = pytest.mark.integration


def _drop_carrier(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["carrier"])


def _null_target(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(arr_delay=np.nan)


def _text_target(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(arr_delay=frame["arr_delay"].map(lambda v: f"{v} min"))


def _no_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[:0]


CASES = {
    "missing_column": (_drop_carrier, ["expect_column_to_exist on column 'carrier'"]),
    "all_null_target": (
        _null_target,
        ["expect_column_proportion_of_non_null_values_to_be_between on column 'arr_delay'", "observed 0"],
    ),
    "wrong_dtype": (
        _text_target,
        ["expect_column_values_to_be_in_type_list on column 'arr_delay'", "rows unexpected (100.00%)", "min"],
    ),
    "empty_partition": (_no_rows, ["expect_table_row_count_to_be_between on table", "observed 0"]),
}


def _run(conf: Path, runtime_params: dict) -> Exception:
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
    runs = mlflow.search_runs(
        experiment_names=["flight_delays"],
        filter_string=f"params.`registry.model_name` = '{name}'",
        output_format="list",
    )
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_partition_fails_at_the_gate_and_registers_nothing(
    case: str, kedro_conf: Path, tmp_path: Path, mlflow_uri: str
) -> None:
    corrupt, expected = CASES[case]
    folder = tmp_path / "partitions"
    folder.mkdir()
    corrupt(flights_by_month()["2013-02"]()).to_parquet(folder / "2013-02.parquet")
    write_local(
        kedro_conf,
        "catalog",
        {
            "flights": {
                "type": "partitions.PartitionedDataset",
                "path": str(folder),
                "dataset": "pandas.ParquetDataset",
                "filename_suffix": ".parquet",
            }
        },
    )
    name = f"bad_{case}"
    error = _run(kedro_conf, {"partition": "2013-02", "registry": {"model_name": name}})

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
    error = _run(kedro_conf, {"partition": partition, "registry": {"model_name": name}})
    assert type(error).__name__ == "UnknownPartitionError"
    assert message in str(error)
    assert mlflow.MlflowClient().search_model_versions(f"name='{name}'") == []
    assert _failed_run(name).info.status == "FAILED"
