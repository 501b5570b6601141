"""Turn Airflow REST answers into ``RunView``s: one mapping for the magics and the side panel."""

from __future__ import annotations

from typing import Any

from conveyor_jupyter.settings import ConveyorSettings
from conveyor_jupyter.views import RunView, airflow_run_url


class RunRefError(ValueError):
    """A run reference the magics cannot resolve."""


def parse_run_ref(ref: str, last: tuple[str, str] | None) -> tuple[str, str]:
    """``DAG_ID/RUN_ID`` as printed by every run output, or ``last`` for this kernel's last trigger."""
    if ref == "last":
        if last is None:
            raise RunRefError("no run triggered in this kernel yet: give the run as DAG_ID/RUN_ID")
        return last
    dag_id, sep, run_id = ref.partition("/")
    if not sep or not dag_id or not run_id:
        raise RunRefError(f"run {ref!r} must be DAG_ID/RUN_ID (e.g. ml_ci/manual__2026-01-01T00:00:00+00:00)")
    return dag_id, run_id


def pending_approvals(hitl_details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open approval requests as ``{task_id, subject, body, options}``.

    Only requests whose task is parked in ``awaiting_input``: Airflow 3.3 writes the request a
    moment before the task parks, and an answer given in that moment fails the task.
    """
    out = []
    for detail in hitl_details:
        ti = detail.get("task_instance") or {}
        if detail.get("response_received") or ti.get("state") != "awaiting_input":
            continue
        out.append(
            {
                "dag_id": ti.get("dag_id"),
                "run_id": ti.get("dag_run_id"),
                "task_id": ti.get("task_id"),
                "subject": detail.get("subject", ""),
                "body": detail.get("body") or "",
                "options": list(detail.get("options") or []),
            }
        )
    return out


def run_view(
    settings: ConveyorSettings,
    run: dict[str, Any],
    tasks: list[dict[str, Any]] | None = None,
    approvals: list[dict[str, Any]] | None = None,
) -> RunView:
    dag_id, run_id = run["dag_id"], run["dag_run_id"]
    task_rows = sorted(
        (
            {
                "task_id": t["task_id"],
                "state": t.get("state"),
                "try_number": t.get("try_number") or 0,
                "start_date": t.get("start_date"),
                "end_date": t.get("end_date"),
                "link": f"{airflow_run_url(settings.airflow_url, dag_id, run_id)}/tasks/{t['task_id']}",
            }
            for t in tasks or []
        ),
        key=lambda t: (t["start_date"] or "9999", t["task_id"]),
    )
    pending = approvals or []
    view = RunView(
        kind="airflow",
        run_id=run_id,
        dag_id=dag_id,
        state=run.get("state") or "queued",
        logical_date=run.get("logical_date"),
        start_date=run.get("start_date"),
        end_date=run.get("end_date"),
        conf=run.get("conf") or {},
        tasks=task_rows,
        links={"Airflow": airflow_run_url(settings.airflow_url, dag_id, run_id)},
        approvals=pending,
        message="; ".join(f"awaiting approval: {a['task_id']} ({a['subject']})" for a in pending),
    )
    if settings.mlflow_link_base:
        view.links["MLflow"] = settings.mlflow_link_base
    return view
