"""Sensors on a real MLflow server and a real inference log: deferral, trigger events, checks, DAG runs."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException, TaskDeferred
from mlflow import MlflowClient

from conveyor.core.drift import DriftInputError
from conveyor.core.retrain import RETRAIN_REASON_TAG
from conveyor.sensors.drift import DataDriftSensor, ModelPerformanceSensor, PredictionDriftSensor
from conveyor.triggers.inference_log import InferenceLogTrigger, InferenceLogUnreadable
from tests.monitoring.helpers import log_predictions

WINTER = ("2013-01", "2013-02", "2013-03")
DAGS = Path(__file__).parent / "dags"


@pytest.fixture(scope="module")
def model(flight_model: dict[str, str], mlflow_server: Any) -> Any:
    from conveyor.core.gate import load_version_model

    return load_version_model(MlflowClient(mlflow_server.url), flight_model["name"], flight_model["version"])


@pytest.fixture(scope="module")
def training_period() -> pd.DataFrame:
    """All training-period rows of the model (its reference sample is a thinning of these)."""
    from tests.support.models import _splits

    _, splits = _splits(WINTER, None)
    return splits.train


def _now_minus(minutes: float) -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=minutes)


def _runs(client: MlflowClient, kind: str, model_name: str) -> list[Any]:
    experiment = client.get_experiment_by_name("conveyor-monitoring")
    if experiment is None:
        return []
    return client.search_runs(
        [experiment.experiment_id],
        f"tags.`conveyor.monitor.kind` = '{kind}' and tags.`conveyor.model_name` = '{model_name}'",
    )


async def test_data_drift_sensor_defers_until_rows_arrive_then_flags_april(
    tmp_path: Path,
    flight_model: dict[str, str],
    model: Any,
    flights: Callable[[str], pd.DataFrame],
    mlflow_conn: str,
) -> None:
    log_url = str(tmp_path / "inference-log")
    (tmp_path / "inference-log").mkdir()  # a gateway that has not logged in this window yet
    sensor = DataDriftSensor(
        task_id="data_drift",
        inference_log_url=log_url,
        model_name=flight_model["name"],
        model_version="challenger",
        window_hours=1,
        min_rows=1000,
        poke_interval=0.2,
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})
    assert deferred.value.method_name == "execute_complete"
    classpath, kwargs = deferred.value.trigger.serialize()
    assert kwargs["echo"]["version"] == flight_model["version"]  # the alias is resolved once
    assert classpath == "conveyor.triggers.inference_log.InferenceLogTrigger"
    trigger = InferenceLogTrigger(**json.loads(json.dumps(kwargs)))

    waiting = asyncio.create_task(anext(trigger.run()))
    await asyncio.sleep(1.0)
    assert not waiting.done()  # nothing logged yet: the trigger keeps waiting, holding no worker
    april = flights("2013-04").sample(1500, random_state=1)
    log_predictions(log_url, april, model, flight_model["version"], _now_minus(5))
    event = await asyncio.wait_for(waiting, timeout=30)
    assert event.payload["status"] == "ready" and event.payload["rows"] == 1500

    payload = sensor.execute_complete(context={}, event=event.payload)
    assert json.loads(json.dumps(payload)) == payload
    assert payload["decision"] is True and payload["kind"] == "data_drift"
    assert "temp" in payload["result"]["drifted_features"] and "temp" in payload["reason"]
    assert payload["result"]["n_window"] <= 1500 and payload["model_version"] == flight_model["version"]

    client = MlflowClient(mlflow_conn)
    artifacts = {a.path for a in client.list_artifacts(payload["mlflow_run_id"], "data_drift")}
    assert artifacts == {"data_drift/report.json", "data_drift/feature_drift.png", "data_drift/report.html"}
    run = client.get_run(payload["mlflow_run_id"])
    assert run.data.metrics["drift_detected"] == 1.0 and run.data.metrics["p_value.temp"] < 1e-6
    assert run.data.tags["conveyor.model_version"] == flight_model["version"]
    tags = client.get_run(flight_model["run_id"]).data.tags
    build = tags["conveyor.drift.detector.features.alibi-univariate"]
    saved = client.list_artifacts(flight_model["run_id"], f"{build}/alibi")  # the build the tag names
    assert {"config.toml", "x_ref.npy"} <= {Path(a.path).name for a in saved}


def test_poke_mode_same_season_window_completes_without_drift(
    tmp_path: Path,
    flight_model: dict[str, str],
    model: Any,
    training_period: pd.DataFrame,
    mlflow_conn: str,
) -> None:
    log_url = str(tmp_path / "inference-log")
    log_predictions(
        log_url, training_period.sample(1500, random_state=11), model, flight_model["version"], _now_minus(3)
    )
    sensor = DataDriftSensor(
        task_id="data_drift_poke",
        inference_log_url=log_url,
        model_name=flight_model["name"],
        model_version=flight_model["version"],
        window_hours=1,
        min_rows=1000,
        deferrable=False,
        drift_config={"backend": "scipy"},
    )
    poked = sensor.poke(context={})
    assert poked.is_done
    payload = poked.xcom_value
    assert payload["decision"] is False and payload["reason"] is None
    assert payload["result"]["backend"] == "scipy" and payload["result"]["drifted_features"] == []


def test_prediction_drift_sensor_is_label_free(
    tmp_path: Path,
    flight_model: dict[str, str],
    model: Any,
    flights: Callable[[str], pd.DataFrame],
    training_period: pd.DataFrame,
    mlflow_conn: str,
) -> None:
    """The served delay probabilities of July differ from the model's own on its reference sample."""
    results = {}
    for name, rows in (("july", flights("2013-07")), ("winter", training_period)):
        log_url = str(tmp_path / name)
        log_predictions(
            log_url, rows.sample(2000, random_state=12), model, flight_model["version"], _now_minus(3)
        )
        sensor = PredictionDriftSensor(
            task_id=f"prediction_drift_{name}",
            inference_log_url=log_url,
            model_name=flight_model["name"],
            model_version=flight_model["version"],
            window_hours=1,
            min_rows=1000,
        )
        results[name] = sensor.execute(context={})
    assert results["july"]["kind"] == "prediction_drift" and results["july"]["decision"] is True
    assert results["july"]["result"]["features"][0]["feature"] == "delay_probability"
    assert results["winter"]["decision"] is False


def test_bad_window_fails_clearly_and_records_nothing(
    tmp_path: Path,
    flight_model: dict[str, str],
    model: Any,
    flights: Callable[[str], pd.DataFrame],
    mlflow_conn: str,
) -> None:
    log_url = str(tmp_path / "inference-log")
    rows = flights("2013-04").sample(1200, random_state=13).reset_index(drop=True)
    records = log_predictions(log_url, rows, model, flight_model["version"], _now_minus(3))
    broken = records.assign(carrier="ZZ", request_id=records["request_id"] + "-x")
    from conveyor.core import inference_log

    inference_log.write_partitioned(log_url, "predictions", broken)  # half the window: an unknown carrier
    client = MlflowClient(mlflow_conn)
    before = len(_runs(client, "data_drift", flight_model["name"]))
    sensor = DataDriftSensor(
        task_id="data_drift_bad",
        inference_log_url=log_url,
        model_name=flight_model["name"],
        model_version=flight_model["version"],
        window_hours=1,
        min_rows=1000,
    )
    with pytest.raises(DriftInputError, match=r"column 'carrier'.*never seen in the reference"):
        sensor.execute(context={})
    assert len(_runs(client, "data_drift", flight_model["name"])) == before


def test_missing_alias_fails_before_waiting(
    tmp_path: Path, flight_model: dict[str, str], mlflow_conn: str
) -> None:
    sensor = DataDriftSensor(
        task_id="no_champion",
        inference_log_url=str(tmp_path),
        model_name=flight_model["name"],
        model_version="champion",
    )
    with pytest.raises(Exception, match="has no version 'champion': nothing deployed to monitor"):
        sensor.execute(context={})


def _log_with_labels(log_url: str, rows: pd.DataFrame, model: Any, version: str) -> None:
    from conveyor.core import inference_log

    records = log_predictions(log_url, rows, model, version, rows["time_hour"])
    feedback = pd.DataFrame(
        {
            "request_id": records["request_id"],
            "ts": pd.to_datetime(records["ts"], utc=True) + pd.Timedelta(hours=1),
            "label": rows["delayed"].to_numpy(),
        }
    )
    inference_log.write_partitioned(log_url, "feedback", feedback)


def test_performance_sensor_flags_december_concept_drift(
    tmp_path: Path,
    flight_model: dict[str, str],
    model: Any,
    flights: Callable[[str], pd.DataFrame],
    training_period: pd.DataFrame,
    mlflow_conn: str,
) -> None:
    """Labels arrive for December: delays rose from ~20% to 33%, so the winter model's
    probabilities, calibrated to its own months, no longer fit them: log loss rises well past the
    tolerance (0.61 vs 0.47) while the training period's own labels stay at the reference. (Its
    ranking and, with its threshold chosen for balanced accuracy, its decisions hold up: ROC AUC
    and accuracy fall by less than the tolerance.)"""
    results = {}
    for name, rows, end in (
        ("december", flights("2013-12"), "2014-01-01T00:00:00+00:00"),
        ("winter", training_period, "2013-03-15T00:00:00+00:00"),
    ):
        log_url = str(tmp_path / name)
        _log_with_labels(
            log_url, rows.sample(2000, random_state=14).reset_index(drop=True), model, flight_model["version"]
        )
        sensor = ModelPerformanceSensor(
            task_id=f"performance_{name}",
            inference_log_url=log_url,
            model_name=flight_model["name"],
            model_version=flight_model["version"],
            window_end=end,
            window_hours=31 * 24 if name == "december" else 74 * 24,
            min_rows=1000,
            tolerance=0.05,
            metrics=("roc_auc", "log_loss", "accuracy"),
            freq="7D",
        )
        results[name] = sensor.execute(context={})  # the window closed long ago: no waiting
    december, winter = results["december"], results["winter"]
    print(f"\ndecember {december['result']['metrics']} vs reference {december['result']['reference']}")
    print(f"winter {winter['result']['metrics']}")
    assert december["decision"] is True and "log_loss" in december["reason"]
    assert december["result"]["n_labelled"] > 1950 and december["result"]["positive_rate"] > 0.3
    assert winter["decision"] is False
    client = MlflowClient(mlflow_conn)
    artifacts = {a.path for a in client.list_artifacts(december["mlflow_run_id"], "performance")}
    assert artifacts == {"performance/report.json", "performance/performance_over_time.png"}


def test_monitor_dag_defers_detects_and_requests_retraining(
    caplog: pytest.LogCaptureFixture,
    airflow_db: Path,
    tmp_path: Path,
    flight_model: dict[str, str],
    model: Any,
    flights: Callable[[str], pd.DataFrame],
    mlflow_conn: str,
) -> None:
    """In ``dag.test()`` the sensor defers (too few rows), its trigger fires once the rest arrive,
    the check finds April drift and the retrain request records its reason on the model version.

    Nothing here races the clock: the window stays open for ten minutes, and the rows that end
    the wait are logged only after the trigger is seen running.
    """
    link = airflow_db / "dags" / "conveyor_monitoring_monitor.py"  # dag.test() needs it in the bundle
    if not link.exists():
        link.symlink_to(DAGS / "monitor.py")
    spec = importlib.util.spec_from_file_location("conveyor_monitoring_monitor", DAGS / "monitor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log_url = str(tmp_path / "inference-log")
    april = flights("2013-04").sample(2500, random_state=15)
    log_predictions(log_url, april.iloc[:1500], model, flight_model["version"], _now_minus(2))
    window_end = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=10)).isoformat()
    finished = threading.Event()

    def log_the_rest_once_deferred() -> None:
        while "[DAG TEST] running trigger in line" not in caplog.text:
            if finished.wait(0.2):  # dag.test() returned without ever deferring
                return
        log_predictions(log_url, april.iloc[1500:], model, flight_model["version"], _now_minus(1))

    writer = threading.Thread(target=log_the_rest_once_deferred, daemon=True)
    writer.start()
    with caplog.at_level(logging.INFO, logger="airflow.sdk.definitions.dag"):
        try:
            run = module.monitor.test(
                run_conf={"log_url": log_url, "model_name": flight_model["name"], "window_end": window_end}
            )
        finally:
            finished.set()
            writer.join()
    assert "[DAG TEST] running trigger in line" in caplog.text  # the sensor deferred
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert states == {"data_drift": "success", "request_retrain": "success"}
    tags = MlflowClient(mlflow_conn).get_model_version(flight_model["name"], flight_model["version"]).tags
    assert "data drift in" in tags[RETRAIN_REASON_TAG] and "temp" in tags[RETRAIN_REASON_TAG]


# ---- a sensor that cannot read its data fails, naming why; it never reads as "no drift" ------------


def _drift_sensor(log_url: str, flight_model: dict[str, str], **kwargs: Any) -> DataDriftSensor:
    return DataDriftSensor(
        task_id="data_drift_unreadable",
        inference_log_url=log_url,
        model_name=flight_model["name"],
        model_version=kwargs.pop("model_version", flight_model["version"]),
        window_hours=1,
        min_rows=kwargs.pop("min_rows", 1000),
        poke_interval=0.2,
        **kwargs,
    )


def _corrupt_file_in_window(log_url: str) -> Path:
    """A file with a log file's name whose bytes are not Parquet (a copy cut short, a bad disk)."""
    folder = next(Path(log_url, "predictions").glob("date=*/hour=*"))
    bad = folder / "0123456789abcdef0123456789abcdef.parquet"
    bad.write_bytes(b"PAR1 this is not a parquet file")
    return bad


@pytest.mark.parametrize("deferrable", [True, False])
def test_a_missing_or_unset_inference_log_fails_instead_of_waiting_for_rows(
    tmp_path: Path, flight_model: dict[str, str], mlflow_conn: str, deferrable: bool
) -> None:
    missing = _drift_sensor(str(tmp_path / "no-such-log"), flight_model, deferrable=deferrable)
    with pytest.raises(InferenceLogUnreadable, match=r"no-such-log' does not exist: wrong inference_log_url"):
        missing.execute(context={})
    unset = _drift_sensor("", flight_model, deferrable=deferrable)
    with pytest.raises(InferenceLogUnreadable, match="inference_log_url is empty"):
        unset.execute(context={})


def test_a_corrupt_log_file_fails_the_check_and_records_nothing(
    tmp_path: Path, flight_model: dict[str, str], model: Any, training_period: pd.DataFrame, mlflow_conn: str
) -> None:
    """The readers skip a file that is not Parquet; the sensor does not test what is left."""
    log_url = str(tmp_path / "inference-log")
    log_predictions(
        log_url, training_period.sample(1500, random_state=21), model, flight_model["version"], _now_minus(3)
    )
    bad = _corrupt_file_in_window(log_url)
    client = MlflowClient(mlflow_conn)
    before = len(_runs(client, "data_drift", flight_model["name"]))
    for deferrable in (True, False):
        sensor = _drift_sensor(
            log_url, flight_model, deferrable=deferrable, drift_config={"backend": "scipy"}
        )
        expected = re.escape(f"inference log file {bad} is unreadable")
        with pytest.raises(InferenceLogUnreadable, match=expected):
            sensor.execute(context={})
    assert len(_runs(client, "data_drift", flight_model["name"])) == before


async def test_a_corrupt_file_appearing_while_deferred_fails_the_task(
    tmp_path: Path, flight_model: dict[str, str], model: Any, training_period: pd.DataFrame, mlflow_conn: str
) -> None:
    log_url = str(tmp_path / "inference-log")
    rows = training_period.sample(600, random_state=22)
    log_predictions(log_url, rows, model, flight_model["version"], _now_minus(3))
    sensor = _drift_sensor(log_url, flight_model, on_too_few_rows="skip")
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})  # 600 of 1000 rows: wait
    trigger = InferenceLogTrigger(**deferred.value.trigger.serialize()[1])
    waiting = asyncio.create_task(anext(trigger.run()))
    await asyncio.sleep(0.6)
    assert not waiting.done()
    bad = _corrupt_file_in_window(log_url)
    event = await asyncio.wait_for(waiting, timeout=10)
    assert event.payload["status"] == "error" and str(bad) in event.payload["message"]
    # A failure even with on_too_few_rows="skip": only a quiet window may be skipped.
    with pytest.raises(AirflowException, match=r"could not read the inference log: .*unreadable") as err:
        sensor.resume_execution("execute_complete", {"event": event.payload}, context={})
    assert not isinstance(err.value, AirflowSkipException)


@pytest.mark.parametrize(
    ("on_too_few_rows", "raised"), [("skip", AirflowSkipException), ("fail", AirflowSensorTimeout)]
)
async def test_a_quiet_window_at_the_timeout_is_skipped_or_failed_with_its_counts(
    tmp_path: Path,
    flight_model: dict[str, str],
    model: Any,
    training_period: pd.DataFrame,
    mlflow_conn: str,
    on_too_few_rows: str,
    raised: type,
) -> None:
    log_url = str(tmp_path / "inference-log")
    log_predictions(
        log_url, training_period.sample(300, random_state=23), model, flight_model["version"], _now_minus(3)
    )
    sensor = _drift_sensor(log_url, flight_model, timeout=1.0, on_too_few_rows=on_too_few_rows)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})
    assert deferred.value.timeout.total_seconds() > 1.0  # the trigger reports first, with counts
    trigger = InferenceLogTrigger(**deferred.value.trigger.serialize()[1])
    event = await asyncio.wait_for(anext(trigger.run()), timeout=10)
    assert event.payload["status"] == "too_few_rows" and event.payload["rows"] == 300
    with pytest.raises(raised, match=r"only 300/1000 rows in .* too little traffic to test"):
        sensor.resume_execution("execute_complete", {"event": event.payload}, context={})

    poking = _drift_sensor(
        log_url, flight_model, timeout=0.5, deferrable=False, on_too_few_rows=on_too_few_rows
    )
    with pytest.raises(raised, match=r"only 300/1000 rows in .* too little traffic to test"):
        poking.execute(context={})


@pytest.mark.parametrize("flag", ["soft_fail", "never_fail", "silent_fail"])
def test_flags_that_would_turn_read_failures_into_skips_are_refused(
    tmp_path: Path, flight_model: dict[str, str], flag: str
) -> None:
    with pytest.raises(ValueError, match=f"{flag} would turn a sensor that cannot read its data into a skip"):
        _drift_sensor(str(tmp_path), flight_model, **{flag: True})
    with pytest.raises(ValueError, match="on_too_few_rows must be 'fail' or 'skip'"):
        _drift_sensor(str(tmp_path), flight_model, on_too_few_rows="ignore")
