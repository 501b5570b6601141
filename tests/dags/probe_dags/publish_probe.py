"""Test DAG: a gate decision (as ModelGateOperator returns it) handed to PublishChallengerOperator."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset

from conveyor.operators.challenger import PublishChallengerOperator

PROBE_ASSET = Asset(uri="model://publish_probe/challenger", name="publish_probe_challenger")

with DAG("publish_probe", schedule=None, start_date=datetime(2013, 1, 1), catchup=False) as dag:
    gate = PythonOperator(
        task_id="model_gate",
        python_callable=lambda: {"model_name": "publish_probe", "candidate_version": "7", "status": "passed"},
    )
    gate >> PublishChallengerOperator(task_id="publish_challenger", asset=PROBE_ASSET)
