"""Kedro runs and the data gate through real DAG runs: the real project, real data, real MLflow."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from airflow.sdk.exceptions import AirflowFailException
from mlflow import MlflowClient

from conveyor.operators.validation import DataValidationOperator

PROJECT = Path(__file__).resolve().parents[2] / "kedro_project"
SUITE = PROJECT / "conf" / "base" / "gx" / "flights_partition.json"


@pytest.fixture
def kedro_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project's configuration with every output under ``tmp_path``, as two connections."""
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    (conf / "base" / "globals.yml").write_text(f"data_root: {tmp_path / 'data'}\n")
    extra = {"project_path": str(PROJECT), "conf_source": str(conf)}
    monkeypatch.setenv(
        "AIRFLOW_CONN_KEDRO_DEFAULT", json.dumps({"conn_type": "conveyor_kedro", "extra": extra})
    )
    separate = {**extra, "python_bin": sys.executable}
    monkeypatch.setenv(
        "AIRFLOW_CONN_KEDRO_SEPARATE_ENV", json.dumps({"conn_type": "conveyor_kedro", "extra": separate})
    )
    return conf


def _ti(dr, task_id: str):
    return next(t for t in dr.get_task_instances() if t.task_id == task_id)


def test_month_is_validated_then_trained_and_registered(
    test_dags: dict[str, ModuleType], mlflow_conn: str, kedro_conf: Path, client: MlflowClient
) -> None:
    dag = test_dags["kedro_ci"].kedro_ci
    dr = dag.test(logical_date=datetime(2013, 3, 1, tzinfo=UTC))
    assert dr.state == "success", {t.task_id: t.state for t in dr.get_task_instances()}
    partition = dr.data_interval_start.strftime("%Y-%m")

    report = _ti(dr, "validate").xcom_pull(task_ids="validate")
    assert report["success"] is True and report["row_count"] > 1000
    assert report["dataset"] == f"flights {partition}"
    validation_run = client.get_run(_ti(dr, "validate").xcom_pull(task_ids="validate", key="mlflow_run_id"))
    assert validation_run.data.tags["conveyor.partition"] == partition
    assert {a.path for a in client.list_artifacts(validation_run.info.run_id, "validation")} == {
        "validation/data_validation_report.json",
        "validation/data_validation_report.txt",
    }

    result = _ti(dr, "train").xcom_pull(task_ids="train")
    run = client.get_run(result["mlflow_run_id"])
    assert run.data.tags["conveyor.partition"] == partition  # the templated runtime param reached Kedro
    assert run.data.params["data_processing.max_rows"] == "3000"
    version = client.get_model_version(result["model_name"], result["model_version"])
    assert version.run_id == run.info.run_id
    assert client.get_model_version_by_alias(result["model_name"], "challenger").version == version.version
    assert (
        _ti(dr, "train")
        .xcom_pull(task_ids="train", key="model_version_url")
        .endswith(f"/#/models/{result['model_name']}/versions/{version.version}")
    )
    assert (kedro_conf.parent / "data" / "05_model_input" / "eval_set.parquet").is_file()


def test_kedro_runs_in_a_separate_interpreter(
    test_dags: dict[str, ModuleType], mlflow_conn: str, kedro_conf: Path, client: MlflowClient
) -> None:
    dr = test_dags["kedro_ci"].kedro_subprocess.test()
    assert dr.state == "success"
    result = _ti(dr, "data_processing").xcom_pull(task_ids="data_processing")
    assert result["model_version"] is None  # data processing alone registers nothing
    run = client.get_run(result["mlflow_run_id"])
    assert run.data.tags["conveyor.partition"] == "2013-03"
    assert run.data.tags["conveyor.pipeline"] == "data_processing"
    # scratch_data: the splits went to a private temporary folder, not the configured data_root,
    # and that folder is neither a logged parameter nor part of the params hash.
    assert run.data.params["data_processing.max_rows"] == "2000"
    assert "data_root" not in run.data.params
    assert not (kedro_conf.parent / "data" / "05_model_input").exists()


def _broken_month(tmp_path: Path) -> Path:
    from flight_delays.data import flights_by_month

    frame = flights_by_month()["2013-04"]().head(500).copy()
    frame.loc[:9, "origin"] = "XXX"
    frame.loc[:4, "hour"] = 99
    path = tmp_path / "broken.parquet"
    frame.to_parquet(path)
    return path


def test_critical_failure_fails_with_readable_report(tmp_path: Path) -> None:
    op = DataValidationOperator(
        task_id="validate", suite_path=str(SUITE), data_path=str(_broken_month(tmp_path)), mlflow_conn_id=None
    )
    with pytest.raises(AirflowFailException) as failure:
        op.execute({})
    text = str(failure.value)
    assert text.startswith("Data validation FAILED: suite 'flights_partition' on broken.parquet (500 rows)")
    assert "origin" in text and "XXX" in text and "hour" in text


def test_warn_only_reports_and_continues(tmp_path: Path) -> None:
    op = DataValidationOperator(
        task_id="validate",
        suite_path=str(SUITE),
        data_path=str(_broken_month(tmp_path)),
        warn_only=True,
        mlflow_conn_id=None,
    )
    report = op.execute({})
    assert report["success"] is False and report["critical_failures"] == 2
    assert {f["column"] for f in report["failures"] if f["severity"] == "critical"} == {"origin", "hour"}


def test_operator_arguments_are_checked_when_the_dag_is_written() -> None:
    with pytest.raises(ValueError, match="exactly one of suite_path and suite_dataset"):
        DataValidationOperator(task_id="v", data_path="x.parquet")
    with pytest.raises(ValueError, match="exactly one of data_path and dataset"):
        DataValidationOperator(task_id="v", suite_path="s.json", data_path="x", dataset="flights")
