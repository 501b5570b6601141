"""The notebook's drift view reads a check only once the sensor has finished recording it, and a
check that failed while recording reads as failed, not as a run in progress."""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient

from conveyor.core.drift.monitor import DATA_DRIFT, MONITORING_EXPERIMENT, record_run
from conveyor.core.drift.window import Window
from conveyor_jupyter import registry
from tests.support.drift import record_drift_check


def test_a_check_still_being_recorded_is_not_shown_half_written(mlflow_conn: str) -> None:
    client = MlflowClient(mlflow_conn)
    name = f"drift-summary-{uuid.uuid4().hex[:6]}"
    record_drift_check(client, name, "1")
    finished = registry.drift_summary(mlflow_conn, name)
    # A newer check whose sensor has created its run and logged only part of it so far.
    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT).experiment_id
    tags = {"conveyor.model_name": name, "conveyor.model_version": "2", "conveyor.monitor.kind": DATA_DRIFT}
    running = client.create_run(experiment, tags=tags)
    client.log_dict(running.info.run_id, {"partial": True}, f"{DATA_DRIFT}/report.json")

    summary = registry.drift_summary(mlflow_conn, name)
    assert summary["run_id"] == finished["run_id"] != running.info.run_id
    assert summary["model_version"] == "1" and summary["plots"] == [f"{DATA_DRIFT}/feature_drift.png"]
    assert summary["report"]["features"] and "partial" not in summary["report"]
    png = registry.artifact_bytes(mlflow_conn, summary["run_id"], summary["plots"][0])
    assert png.startswith(b"\x89PNG")

    client.set_terminated(running.info.run_id)
    assert registry.drift_summary(mlflow_conn, name)["run_id"] == running.info.run_id


def test_a_check_that_fails_while_recording_ends_failed_and_is_not_shown(mlflow_conn: str) -> None:
    client = MlflowClient(mlflow_conn)
    name = f"drift-summary-{uuid.uuid4().hex[:6]}"
    with pytest.raises(TypeError):
        record_run(
            client,
            kind=DATA_DRIFT,
            model_name=name,
            model_version="1",
            window=Window.ending("2013-04-30T00:00:00Z", hours=24),
            decision=True,
            metrics={"drift_share": 0.5},
            report={"features": []},
            figures={"feature_drift.png": "not a figure"},
        )
    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT).experiment_id
    (run,) = client.search_runs([experiment], f"tags.`conveyor.model_name` = '{name}'")
    assert run.info.status == "FAILED"
    with pytest.raises(registry.RegistryError, match="no drift report"):
        registry.drift_summary(mlflow_conn, name)
