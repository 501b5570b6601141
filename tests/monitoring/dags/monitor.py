"""A monitor DAG built from Conveyor's sensors, run by the monitoring tests with ``dag.test()``.

The drift sensor asks for more rows (2000) than the test logs before the run (1500), so it must
defer; the test logs the rest once the trigger runs, and the trigger fires on the row count, long
before the window closes (``window_end``).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from conveyor.operators.retrain import RetrainRequestOperator
from conveyor.sensors.drift import DataDriftSensor

with DAG(
    dag_id="conveyor_test_monitor",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={
        "log_url": Param("/tmp/inference-log", type="string", description="Inference log root"),
        "model_name": Param("flight_delays", type="string"),
        "window_end": Param("", type="string", description="ISO time at which the window closes"),
    },
) as monitor:
    drift = DataDriftSensor(
        task_id="data_drift",
        inference_log_url="{{ params.log_url }}",
        model_name="{{ params.model_name }}",
        model_version="challenger",
        window_hours=1,
        window_end="{{ params.window_end }}",
        min_rows=2000,
        poke_interval=1.0,
    )
    request = RetrainRequestOperator(
        task_id="request_retrain", monitor_task_ids=["data_drift"], triggered_by="ml_monitor/{{ run_id }}"
    )
    drift >> request
