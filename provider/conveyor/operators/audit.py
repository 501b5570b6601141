"""Who and which task instance an Airflow task acts for, as written into the audit trail."""

from __future__ import annotations

from typing import Any


def actor(context: dict[str, Any]) -> str:
    """The triggering user when Airflow knows one, plus the task, so an entry names both."""
    ti = context.get("ti")
    where = f"airflow:{ti.dag_id}.{ti.task_id}" if ti is not None else "airflow"
    dag_run = context.get("dag_run")
    user = getattr(dag_run, "triggering_user_name", None)
    return f"{user} via {where}" if user else where


def task_key(context: dict[str, Any]) -> str | None:
    """Identity of the task instance across retries and clears: the idempotency key of its writes."""
    ti = context.get("ti")
    if ti is None:
        return None
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"


def is_backfill(context: dict[str, Any]) -> bool:
    """Backfills re-run history; they may train and register but must not change production."""
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return getattr(run_type, "value", run_type) == "backfill"
