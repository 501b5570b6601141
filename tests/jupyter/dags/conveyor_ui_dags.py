"""Small DAGs for the notebook and panel tests: params for the trigger form, a human approval.

Each task is a few lines so a run finishes in seconds; what is under test is the Jupyter side.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="conveyor_ui_params",
    schedule="@daily",
    start_date=pendulum.datetime(2013, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    params={
        "rows": Param(3, type="integer", minimum=1, description="rows to produce"),
        "mode": Param("fast", enum=["fast", "slow"], description="how to run"),
        "note": Param("", type="string", description="free text"),
    },
    tags=["conveyor-test"],
):

    @task
    def prepare(params: dict | None = None) -> int:
        rows = int(params["rows"])
        print(f"preparing {rows} rows in {params['mode']} mode: {params['note']!r}")
        return rows

    @task
    def report(rows: int) -> None:
        print(f"CONVEYOR-REPORT rows={rows}")

    report(prepare())


with DAG(
    dag_id="conveyor_ui_approval",
    schedule=None,
    start_date=pendulum.datetime(2013, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["conveyor-test"],
):

    @task
    def build() -> str:
        return "candidate-1"

    @task
    def release(candidate: str) -> None:
        print(f"CONVEYOR-RELEASED {candidate}")

    built = build()
    gate = ApprovalOperator(task_id="approve_release", subject="Release candidate-1?", body="Tests passed.")
    built >> gate
    gate >> release(built)
