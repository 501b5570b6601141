"""ml_ci: validate a month of flights, train and evaluate with Kedro, gate the candidate, hand it to ml_cd.

Scheduled monthly over 2013 with a real data interval: the run for [2013-03-01, 2013-04-01)
trains on partition ``2013-03``, so a backfill over a range trains one model per month. Manual
runs (UI form, REST, ml_monitor's retraining request) train on ``params.partitions`` instead.
A backfill run trains, registers and gates, but never publishes the challenger, so nothing old
is ever deployed; other runs emit ``model://flight_delays/challenger`` (the gated version in the
event's extra) and ml_cd picks it up.

Each ``train`` task gives Kedro a private scratch ``data_root``, so two runs (a backfill with
``max_active_runs=2``) train at the same time without reading each other's intermediate files;
what a run produced lives on in MLflow.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param

from conveyor.operators.challenger import PublishChallengerOperator
from conveyor.operators.gate import ModelGateOperator
from conveyor.operators.kedro import KedroRunOperator
from conveyor.operators.validation import DataValidationOperator

CHALLENGER = Asset(uri="model://flight_delays/challenger", name="flight_delays_challenger")

# Scheduled and backfill runs: the month of their data interval; every other run: the params.
PARTITION = (
    "{{ data_interval_start.strftime('%Y-%m') if dag_run.run_type in ('scheduled', 'backfill') "
    "else params.partitions }}"
)

with DAG(
    dag_id="ml_ci",
    description="Data validation -> Kedro training/evaluation -> model gate -> challenger for ml_cd",
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=datetime(2013, 1, 1),
    end_date=datetime(2013, 12, 31),
    catchup=False,
    max_active_runs=2,
    tags=["conveyor", "ci"],
    # Numbers and the gate rules reach the operators as numbers and dicts, not as their text.
    render_template_as_native_obj=True,
    params={
        "model_name": Param("flight_delays", type="string", description="Registered model in MLflow."),
        "partitions": Param(
            "2013-01,2013-02,2013-03",
            type="string",
            pattern=r"^\d{4}-(0[1-9]|1[0-2])(,\d{4}-(0[1-9]|1[0-2]))*$",
            description="Months to train on for manual and triggered runs, comma-separated "
            "(2013-04 or 2013-04,2013-05). Scheduled and backfill runs train on the month of their "
            "data interval instead.",
        ),
        "max_rows": Param(
            None,
            type=["null", "integer"],
            minimum=100,
            description="Cap on labelled rows (empty: all); small values make quick trial runs.",
        ),
        "max_epochs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Cap on training epochs (empty: the project's parameters); for quick trial runs.",
        ),
        "decision_threshold": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="Probability from which the served model answers delayed=1 (empty: the "
            "project's 0.5). The gate judges ROC AUC, which no threshold changes; a bad threshold "
            "shows in the canary's online accuracy.",
        ),
        "min_roc_auc": Param(
            0.6, type="number", minimum=0, maximum=1, description="Absolute ROC AUC floor of the model gate."
        ),
        "auc_tolerance": Param(
            0.005,
            type="number",
            minimum=0,
            description="Non-inferiority margin: candidate ROC AUC >= champion ROC AUC - tolerance.",
        ),
        "force_reason": Param(
            "",
            type="string",
            description="Non-empty: pass the gate whatever the metrics, recording this reason.",
        ),
    },
    doc_md=__doc__,
) as dag:
    validate_data = DataValidationOperator(
        task_id="validate_data",
        suite_dataset="flights_partition_suite",
        dataset="flights",
        partition=PARTITION,
    )
    train = KedroRunOperator(
        task_id="train",
        scratch_data=True,
        runtime_params={
            "partition": PARTITION,
            "registry": {"model_name": "{{ params.model_name }}"},
            "data_processing": {"max_rows": "{{ params.max_rows }}"},
            # Empty overrides leave the project's epochs and decision threshold as they are.
            "training": "{{ dict({'max_epochs': params.max_epochs} if params.max_epochs else {}, "
            "**({'decision_threshold': params.decision_threshold} "
            "if params.decision_threshold is not none else {})) }}",
        },
    )
    model_gate = ModelGateOperator(
        task_id="model_gate",
        model_name="{{ params.model_name }}",
        candidate="{{ ti.xcom_pull(task_ids='train', key='model_version') }}",
        rules='{"roc_auc": {"threshold": {{ params.min_roc_auc }}, "tolerance": {{ params.auc_tolerance }}}}',
        force_reason="{{ params.force_reason }}",
        # A rejected candidate ends the run green with the gate skipped and its reason logged.
        fail_on_reject=False,
    )
    publish = PublishChallengerOperator(task_id="publish_challenger", asset=CHALLENGER)
    validate_data >> train >> model_gate >> publish
