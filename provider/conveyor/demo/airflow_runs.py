"""Following DAG runs through the Airflow REST API, as the UI does, with a line per state change.

The demo drives Airflow only through ``conveyor.clients.airflow``: what it shows is what a
user sees in the UI, and an approval it gives goes through the same HITL endpoint as a click
on "Approve".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.clients.airflow import AirflowClient, AirflowNotFoundError
from conveyor.demo.report import StepFailed

TERMINAL = ("success", "failed")


@dataclass
class FinishedRun:
    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str | None]  # task id -> final state
    seconds: float

    def task_state(self, task_id: str) -> str | None:
        return self.tasks.get(task_id)


def follow(
    client: AirflowClient,
    dag_id: str,
    run_id: str,
    note: Callable[[str], None],
    *,
    timeout: float = 900.0,
    approve: bool = True,
    approve_after_s: float = 10.0,
    poll: float = 2.0,
) -> FinishedRun:
    """Wait for a run to finish, printing task state changes; answer its approvals with Approve.

    ``approve`` plays the reviewer of ``ml_cd``'s human-approval task: the demo is unattended,
    so it approves through the HITL API and says so, exactly where a person would click.
    It answers ``approve_after_s`` after the task parked in ``awaiting_input``, as a person
    would: on Airflow 3.3 an answer given before the scheduler has processed the exit of the
    task's first process (a second or two) makes the scheduler mark the resumed task failed
    ("finished with state success, but the task instance's state attribute is queued").
    """
    began = time.monotonic()
    deadline = began + timeout
    seen: dict[str, str | None] = {}
    parked: dict[str, float] = {}  # task id -> when it was first seen awaiting input
    answered: set[str] = set()
    while True:
        run = client.get_dag_run(dag_id, run_id)
        tasks = {ti["task_id"]: ti["state"] for ti in client.task_instances(dag_id, run_id)}
        for task_id, state in tasks.items():
            if state != seen.get(task_id) and state is not None:
                note(f"{dag_id} {task_id}: {state}")
            if state == "awaiting_input":
                parked.setdefault(task_id, time.monotonic())
        seen = tasks
        if approve:
            for pending in client.hitl_details(dag_id, run_id, response_received=False):
                task_id = (pending.get("task_instance") or {}).get("task_id")
                if (
                    task_id
                    and task_id not in answered
                    and tasks.get(task_id) == "awaiting_input"
                    and time.monotonic() - parked[task_id] >= approve_after_s
                ):
                    client.approve(dag_id, run_id, task_id)
                    answered.add(task_id)
                    note(f"{dag_id} {task_id}: approved through the HITL API (the reviewer's click)")
        if run["state"] in TERMINAL:
            return FinishedRun(dag_id, run_id, run["state"], tasks, time.monotonic() - began)
        if time.monotonic() > deadline:
            raise StepFailed(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f}s: {tasks}")
        time.sleep(poll)


def next_run(
    client: AirflowClient,
    dag_id: str,
    known: set[str],
    note: Callable[[str], None],
    *,
    timeout: float = 300.0,
    poll: float = 2.0,
) -> dict[str, Any]:
    """The first run of ``dag_id`` not in ``known`` (e.g. ml_cd started by ml_ci's Asset event)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in client.list_dag_runs(dag_id, limit=20):
            if run["dag_run_id"] not in known:
                note(f"{dag_id} run {run['dag_run_id']} ({run['run_type']}) started")
                return run
        time.sleep(poll)
    raise StepFailed(f"no new {dag_id} run appeared within {timeout:.0f}s")


def run_ids(client: AirflowClient, dag_id: str) -> set[str]:
    return {run["dag_run_id"] for run in client.list_dag_runs(dag_id, limit=100)}


def xcom(client: AirflowClient, dag_id: str, run_id: str, task_id: str) -> Any:
    """A task's return value, or ``None`` when it pushed none (skipped, failed before returning)."""
    try:
        return client.xcom(dag_id, run_id, task_id)
    except AirflowNotFoundError:
        return None
