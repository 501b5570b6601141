"""Operator guards that act before any service is touched: arguments, backfills, audit identity."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from conveyor.operators.audit import actor, task_key
from conveyor.operators.registry import PromoteModelOperator


def _context(run_type: str, user: str | None = "alice") -> dict:
    ti = SimpleNamespace(dag_id="ml_ci", task_id="promote", run_id="backfill__2013-03", map_index=-1)
    return {
        "ti": ti,
        "dag_run": SimpleNamespace(run_type=SimpleNamespace(value=run_type), triggering_user_name=user),
    }


def test_backfill_runs_never_promote() -> None:
    op = PromoteModelOperator(
        task_id="promote", model_name="m", mlflow_conn_id="connection_that_does_not_exist"
    )
    with pytest.raises(AirflowSkipException, match="backfill runs never promote"):
        op.execute(_context("backfill"))


@pytest.mark.parametrize("kwargs", [{"gate_task_id": None}, {"gate_task_id": "model_gate", "version": "3"}])
def test_promote_needs_exactly_one_source_of_the_version(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="exactly one of gate_task_id and version"):
        PromoteModelOperator(task_id="promote", model_name="m", **kwargs)


def test_audit_identity_names_user_and_task_and_survives_retries() -> None:
    assert actor(_context("manual")) == "alice via airflow:ml_ci.promote"
    assert actor(_context("scheduled", user=None)) == "airflow:ml_ci.promote"
    assert task_key(_context("manual")) == "ml_ci/backfill__2013-03/promote/-1"  # no try number in it
