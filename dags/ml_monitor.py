"""ml_monitor: watch the live model's inference log; on drift or decay, ask ml_ci to retrain.

Hourly: a data-drift sensor (inputs vs the training reference sample) and a performance sensor
(labelled feedback) wait in the triggerer until their window holds enough rows, test it once,
and report to MLflow and the Pushgateway. If either fired, ``RetrainRequestOperator`` records
why and returns the ml_ci conf (reason, recent partitions, who asked), which triggers ml_ci.
A sensor that finds too little traffic before its timeout is skipped (``on_too_few_rows="skip"``),
so one quiet signal does not hide the other. A sensor that cannot read its data (no inference
log at the URL, a corrupt log file, no reference sample in MLflow) or fails on bad input fails the
run, red, with the reason: it never reads as "no drift", and no retraining is requested.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param

from conveyor.operators.retrain import RetrainRequestOperator
from conveyor.sensors.drift import DataDriftSensor, ModelPerformanceSensor

# Airflow Variables, so the same DAG file runs on a laptop and on a cluster.
INFERENCE_LOG = "{{ params.inference_log_url or var.value.get('conveyor_inference_log_url', '') }}"
PUSHGATEWAY = "{{ var.value.get('conveyor_pushgateway_url', '') }}"
# A list of months, or None: the months the drifted window covers.
RETRAIN_PARTITIONS = (
    "{{ (params.retrain_partitions or var.value.get('conveyor_retrain_partitions', '')).split(',')"
    " | map('trim') | select | list or None }}"
)

with DAG(
    dag_id="ml_monitor",
    description="Drift and performance monitoring of the champion; triggers ml_ci to retrain",
    schedule="@hourly",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["conveyor", "monitoring"],
    # Numbers from params reach the sensors as numbers, not as their text.
    render_template_as_native_obj=True,
    params={
        "model_name": Param("flight_delays", type="string", description="Registered model to watch."),
        "model_version": Param(
            "champion", type="string", description="Version or alias whose traffic is tested."
        ),
        "inference_log_url": Param(
            "",
            type="string",
            description="fsspec root of the gateway's inference log; empty: the Airflow Variable "
            "conveyor_inference_log_url.",
        ),
        "window_hours": Param(
            24.0, type="number", minimum=0.01, description="Length of the window of live traffic tested."
        ),
        "drift_backend": Param(
            "alibi",
            enum=["alibi", "scipy"],
            description="alibi-detect (BSL licence) or the permissive scipy tests (KS, chi2, PSI).",
        ),
        "min_roc_auc": Param(
            0.6, type="number", minimum=0, maximum=1, description="ROC AUC floor on labelled feedback."
        ),
        "retrain_partitions": Param(
            "",
            type="string",
            pattern=r"^(\d{4}-(0[1-9]|1[0-2])(,\d{4}-(0[1-9]|1[0-2]))*)?$",
            description="Months ml_ci retrains on, comma-separated; empty: the Airflow Variable "
            "conveyor_retrain_partitions, else the months the tested window covers. Set it when the "
            "traffic replays other months (make demo replays 2013-04).",
        ),
    },
    doc_md=__doc__,
) as dag:
    common = {
        "inference_log_url": INFERENCE_LOG,
        "model_name": "{{ params.model_name }}",
        "model_version": "{{ params.model_version }}",
        "window_hours": "{{ params.window_hours }}",
        "pushgateway_url": PUSHGATEWAY,
        "timeout": timedelta(minutes=50).total_seconds(),
        "on_too_few_rows": "skip",
    }
    data_drift = DataDriftSensor(
        task_id="data_drift",
        drift_config={"backend": "{{ params.drift_backend }}"},
        min_rows=500,
        **common,
    )
    performance = ModelPerformanceSensor(
        task_id="model_performance",
        thresholds={"roc_auc": "{{ params.min_roc_auc }}"},
        min_rows=200,
        **common,
    )
    retrain_request = RetrainRequestOperator(
        task_id="retrain_request",
        monitor_task_ids=["data_drift", "model_performance"],
        triggered_by="ml_monitor/{{ run_id }}",
        partitions=RETRAIN_PARTITIONS,
        trigger_rule="none_failed",
    )
    trigger_ml_ci = TriggerDagRunOperator(
        task_id="trigger_ml_ci",
        trigger_dag_id="ml_ci",
        conf=retrain_request.output,
        # No logical date: ml_ci trains on the partitions in the conf, not on a schedule interval.
        logical_date=None,
        note="retraining requested by ml_monitor",
    )
    [data_drift, performance] >> retrain_request >> trigger_ml_ci
