"""DAGs built only from Conveyor operators, run by the operator tests with ``dag.test()``.

Kept as a DAG *file* so the parse-time test measures what the dag-processor would.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from conveyor.operators.gate import ModelGateOperator
from conveyor.operators.registry import PromoteModelOperator, RollbackModelOperator

GATE_RULES = {
    "roc_auc": {"threshold": 0.55, "tolerance": 0.005},
    "log_loss": {"tolerance": 0.02},
}

with DAG(
    dag_id="conveyor_test_gate_promote",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={
        "model_name": Param("flight_delays", type="string", description="Registered model to gate"),
        "force_reason": Param("", type="string", description="Non-empty: pass the gate anyway, recorded"),
    },
) as gate_promote:
    gate = ModelGateOperator(
        task_id="model_gate",
        model_name="{{ params.model_name }}",
        rules=GATE_RULES,
        force_reason="{{ params.force_reason }}",
    )
    promote = PromoteModelOperator(
        task_id="promote", model_name="{{ params.model_name }}", gate_task_id="model_gate"
    )
    gate >> promote

with DAG(
    dag_id="conveyor_test_rollback",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={
        "model_name": Param("flight_delays", type="string"),
        "reason": Param("rollback requested", type="string", minLength=1),
    },
) as rollback:
    RollbackModelOperator(
        task_id="rollback", model_name="{{ params.model_name }}", reason="{{ params.reason }}"
    )

with DAG(
    dag_id="conveyor_test_promote_retry",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={"model_name": Param("flight_delays", type="string"), "version": Param("1", type="string")},
) as promote_retry:
    PromoteModelOperator(
        task_id="promote",
        model_name="{{ params.model_name }}",
        gate_task_id=None,
        version="{{ params.version }}",
        reason="manual promotion while MLflow restarts",
        retries=20,
        retry_delay=timedelta(seconds=2),
    )
