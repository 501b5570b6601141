"""Data gate then training, one month per run: the CI half of the loop from Conveyor operators."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, CronDataIntervalTimetable

from conveyor.operators.kedro import KedroRunOperator
from conveyor.operators.validation import DataValidationOperator

PARTITION = "{{ data_interval_start.strftime('%Y-%m') }}"

with DAG(
    dag_id="conveyor_test_kedro_ci",
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=datetime(2013, 1, 1),
    catchup=False,
) as kedro_ci:
    validate = DataValidationOperator(
        task_id="validate",
        suite_dataset="flights_partition_suite",
        dataset="flights",
        partition=PARTITION,
    )
    train = KedroRunOperator(
        task_id="train",
        runtime_params={
            "partition": PARTITION,
            "data_processing": {"max_rows": 3000},
            "training": {"max_epochs": 3},
        },
    )
    validate >> train

with DAG(
    dag_id="conveyor_test_kedro_subprocess",
    schedule=None,
    start_date=datetime(2013, 1, 1),
    catchup=False,
) as kedro_subprocess:
    KedroRunOperator(
        task_id="data_processing",
        pipeline="data_processing",
        kedro_conn_id="kedro_separate_env",
        scratch_data=True,
        runtime_params={"partition": "2013-03", "data_processing": {"max_rows": 2000}},
    )
