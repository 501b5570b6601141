"""Validate once: the gate task's MLflow record, reused by the pipeline's gate on the same rows only.

Real GX, real MLflow server, the demo's suite and a real month of flights; the record is written
by ``DataValidationOperator`` itself and read back as ``run_pipeline`` reads it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from conveyor.core.tracking import VALIDATION_REPORT_JSON
from conveyor.core.validation import DataValidationError, validate_frame
from conveyor.core.validation_record import DATA_HASH_TAG, SUITE_HASH_TAG, load_record, reuse, reusing
from conveyor.dags import build_dags
from conveyor.operators.validation import DataValidationOperator

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "kedro_project" / "conf" / "base" / "gx" / "flights_partition.json"
DEMO = ROOT / "kedro_project" / "conf" / "base" / "conveyor.yml"
# What the pipeline's gate_parameters node gives the suite for February (earlier month: January).
GATE_PARAMETERS = {
    "row_count_min": 13000,
    "row_count_max": 60000,
    "partition_years": [2013],
    "partition_months": [2],
}


@contextmanager
def logged() -> Iterator[list[str]]:
    """The reuse module's log lines (Airflow's logging setup keeps them from pytest's caplog)."""
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("conveyor.core.validation_record")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class TaskInstance:
    """Only what the operator asks of a task instance: somewhere to push XComs."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@pytest.fixture(scope="module")
def february(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flight_delays.data import flights_by_month

    path = tmp_path_factory.mktemp("reuse") / "2013-02.parquet"
    flights_by_month()["2013-02"]().to_parquet(path)
    return path


@pytest.fixture
def recorded(february: Path, mlflow_conn: str) -> str:
    """The MLflow run of a passing validation of February, as ml_ci's gate task logs it."""
    ti = TaskInstance()
    op = DataValidationOperator(task_id="validate_data", suite_path=str(SUITE), data_path=str(february))
    assert op.execute({"ti": ti})["success"] is True
    return ti.xcom["mlflow_run_id"]


def _suite() -> dict[str, Any]:
    return json.loads(SUITE.read_text())


def test_the_gate_task_tags_its_run_with_the_suite_and_the_rows(
    recorded: str, february: Path, mlflow_uri: str
) -> None:
    from conveyor.core.lineage import content_hash, params_hash

    tags = MlflowClient(mlflow_uri).get_run(recorded).data.tags
    assert tags["conveyor.validation.status"] == "passed"
    assert tags[DATA_HASH_TAG] == content_hash(pd.read_parquet(february))
    assert tags[SUITE_HASH_TAG] == params_hash(_suite())


def test_the_same_rows_reuse_the_report_and_evaluate_only_what_it_skipped(
    recorded: str, february: Path, mlflow_uri: str
) -> None:
    record = load_record(MlflowClient(mlflow_uri), recorded, VALIDATION_REPORT_JSON)
    assert record is not None and record.report.skipped  # the task had no row-count bounds
    frame = pd.read_parquet(february)
    with reusing([record]), logged() as lines:
        same = validate_frame(frame, _suite(), dataset="flights 2013-02")
        completed = validate_frame(frame, _suite(), dataset="flights 2013-02", parameters=GATE_PARAMETERS)
    assert all(f"reused validation report of MLflow run {recorded}" in line for line in lines)
    assert len(lines) == 2
    assert same.to_dict() == {**record.report.to_dict(), "dataset": "flights 2013-02"}
    # The three expectations that need the pipeline's parameters run now; nothing is skipped.
    full = validate_frame(frame, _suite(), dataset="flights 2013-02", parameters=GATE_PARAMETERS)
    assert completed.skipped == [] and completed.evaluated == full.evaluated == record.report.evaluated + 3
    assert completed.passed == full.passed and completed.success is full.success is True
    assert sorted(f.expectation for f in completed.failures) == sorted(f.expectation for f in full.failures)


def test_rows_changed_since_the_record_are_validated_again(
    recorded: str, february: Path, mlflow_uri: str
) -> None:
    record = load_record(MlflowClient(mlflow_uri), recorded, VALIDATION_REPORT_JSON)
    assert record is not None
    changed = pd.read_parquet(february)
    changed.loc[:9, "origin"] = "XXX"  # a critical expectation: origin in the three NYC airports
    with reusing([record]), logged() as lines:
        report = validate_frame(changed, _suite(), dataset="flights 2013-02")
        with pytest.raises(DataValidationError, match="origin"):
            report.raise_for_critical()
    assert len(lines) == 1 and f"rows differ from those validated by MLflow run {recorded}" in lines[0]


def test_another_suite_or_other_parameter_values_or_no_records_validate_in_full(
    recorded: str, february: Path, mlflow_uri: str
) -> None:
    record = load_record(MlflowClient(mlflow_uri), recorded, VALIDATION_REPORT_JSON)
    assert record is not None
    frame = pd.read_parquet(february)
    stricter = _suite()
    stricter["expectations"] = [
        *stricter["expectations"],
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "origin", "value_set": ["JFK"]},
            "severity": "critical",
        },
    ]
    assert reuse(frame, _suite(), "flights", None) is None  # outside ``reusing``: a plain kedro run
    with reusing([record]):
        assert reuse(frame, stricter, "flights", None) is None
        assert not validate_frame(frame, stricter, dataset="flights").success
    pinned = {**record.__dict__, "parameters": {"partition_months": [2]}}
    with reusing([type(record)(**pinned)]):
        assert reuse(frame, _suite(), "flights", {"partition_months": [3]}) is None
        assert reuse(frame, _suite(), "flights", {"partition_months": [2]}) is not None


def test_a_failed_validation_is_no_record(february: Path, mlflow_conn: str, mlflow_uri: str) -> None:
    broken = pd.read_parquet(february).head(500)
    broken.loc[:9, "origin"] = "XXX"
    path = february.with_name("broken.parquet")
    broken.to_parquet(path)
    ti = TaskInstance()
    op = DataValidationOperator(
        task_id="validate_data", suite_path=str(SUITE), data_path=str(path), warn_only=True
    )
    assert op.execute({"ti": ti})["success"] is False
    assert load_record(MlflowClient(mlflow_uri), ti.xcom["mlflow_run_id"], VALIDATION_REPORT_JSON) is None


def test_ml_ci_hands_the_gate_tasks_runs_to_the_training() -> None:
    dag = build_dags(DEMO)["ml_ci"]
    train = dag.get_task("train")
    asked: dict[str, Any] = {}

    def xcom_pull(task_ids: list[str], key: str) -> list[str]:
        asked.update(task_ids=task_ids, key=key)
        return [f"run-of-{t}" for t in task_ids]

    ti = TaskInstance()
    ti.xcom_pull = xcom_pull  # type: ignore[attr-defined]
    rendered = dag.get_template_env().from_string(train.reuse_validation).render(ti=ti)
    assert asked == {"task_ids": ["validate_data"], "key": "mlflow_run_id"}
    assert rendered == ["run-of-validate_data"]
