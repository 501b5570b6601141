"""The whole promotion loop through real DAG runs (``dag.test()``) on a real MLflow server.

One model name goes through: first model ever → worse model refused → worse model forced
(audited) → better model promoted → one-task rollback. The steps depend on each other the way
they do in production, so they run as one story.
"""

from __future__ import annotations

import threading
import time
from types import ModuleType

from airflow.models.taskinstance import TaskInstance
from mlflow import MlflowClient

from conveyor.core import registry


def _states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _xcom(dr, task_id: str, key: str = "return_value"):
    ti: TaskInstance = next(t for t in dr.get_task_instances() if t.task_id == task_id)
    return ti.xcom_pull(task_ids=task_id, key=key)


def test_dag_promotes_refuses_forces_and_rolls_back(
    test_dags: dict[str, ModuleType], mlflow_conn: str, client: MlflowClient, model_name: str, add_challenger
) -> None:
    dags = test_dags["gate_promote_rollback"]

    # 1. first model ever: judged on absolute thresholds only, promoted.
    v1 = add_challenger("good")
    dr = dags.gate_promote.test(run_conf={"model_name": model_name})
    assert dr.state == "success", _states(dr)
    assert registry.current_version(client, model_name) == v1
    decision = _xcom(dr, "model_gate")
    assert decision["status"] == "passed" and decision["baseline_version"] is None
    assert "absolute thresholds only" in decision["reason"]
    assert (
        _xcom(dr, "model_gate", "model_version_url") == f"{mlflow_conn}/#/models/{model_name}/versions/{v1}"
    )
    run_id = client.get_model_version(model_name, v1).run_id
    assert _xcom(dr, "model_gate", "mlflow_run_url") == f"{mlflow_conn}/#/runs/{run_id}"

    # 2. a clearly worse model: gate fails with a readable reason, promotion never runs.
    v2 = add_challenger("worse")
    dr = dags.gate_promote.test(run_conf={"model_name": model_name})
    assert dr.state == "failed"
    assert _states(dr) == {"model_gate": "failed", "promote": "upstream_failed"}
    assert registry.current_version(client, model_name) == v1
    tags = client.get_model_version(model_name, v2).tags
    assert tags["conveyor.gate.status"] == "rejected"
    assert "roc_auc: below threshold and worse than champion by" in tags["conveyor.gate.reason"]

    # 3. the same worse model forced through: promoted, and the audit trail says who and why.
    v3 = add_challenger("worse")
    dr = dags.gate_promote.test(run_conf={"model_name": model_name, "force_reason": "INC-7: schema change"})
    assert dr.state == "success", _states(dr)
    assert registry.current_version(client, model_name) == v3
    run_tags = client.get_run(client.get_model_version(model_name, v3).run_id).data.tags
    assert run_tags["conveyor.gate.status"] == "forced"
    assert run_tags["conveyor.gate.reason"].startswith(
        "forced by dag_test via airflow:conveyor_test_gate_promote"
    )
    assert "INC-7: schema change (gate verdict was rejected" in run_tags["conveyor.gate.reason"]
    forced_entry = registry.history(client, model_name)[-1]
    assert (forced_entry.version, forced_entry.gate_status, forced_entry.previous_version) == (
        v3,
        "forced",
        v1,
    )

    # 4. a better model than the (forced) champion passes non-inferiority and is promoted.
    v4 = add_challenger("good")
    dr = dags.gate_promote.test(run_conf={"model_name": model_name})
    assert dr.state == "success", _states(dr)
    decision = _xcom(dr, "model_gate")
    assert decision["baseline_version"] == v3
    auc = next(c for c in decision["checks"] if c["metric"] == "roc_auc")
    assert auc["delta"] > 0.1 and auc["non_inferior_ok"] is True
    assert registry.current_version(client, model_name) == v4

    # 5. one task rolls back to the previous champion and records why.
    dr = dags.rollback.test(run_conf={"model_name": model_name, "reason": "p99 latency doubled"})
    assert dr.state == "success", _states(dr)
    assert registry.current_version(client, model_name) == v3
    entries = registry.history(client, model_name)
    assert [(e.action, e.version) for e in entries] == [
        ("promote", v1),
        ("promote", v3),
        ("promote", v4),
        ("rollback", v3),
    ]
    assert entries[-1].reason == "p99 latency doubled" and entries[-1].previous_version == v4


def test_promotion_retries_until_mlflow_is_back(
    test_dags: dict[str, ModuleType],
    mlflow_server,
    mlflow_conn: str,
    client: MlflowClient,
    model_name: str,
    add_challenger,
) -> None:
    """The server goes down; the first try fails naming the URI, a retry succeeds once it is back."""
    version = add_challenger("good")
    from conveyor.core.gate import decide, record_decision, rules_from_mapping

    record_decision(
        client,
        decide(
            rules_from_mapping({"roc_auc": {"threshold": 0.5}}),
            {"roc_auc": 0.6},
            None,
            model_name=model_name,
            candidate_version=version,
        ),
    )
    dag = test_dags["gate_promote_rollback"].promote_retry
    first_failure: list[str] = []

    def restart_after_first_failure() -> None:
        from airflow.utils.session import create_session

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = (
                    session.query(TaskInstance)
                    .filter(TaskInstance.dag_id == dag.dag_id, TaskInstance.state == "up_for_retry")
                    .first()
                )
                if ti is not None:
                    first_failure.append(str(ti.try_number))
                    break
            time.sleep(0.5)
        mlflow_server.start()

    mlflow_server.stop()
    watcher = threading.Thread(target=restart_after_first_failure)
    watcher.start()
    try:
        dr = dag.test(run_conf={"model_name": model_name, "version": version})
    finally:
        watcher.join(timeout=180)
        if mlflow_server.proc is None:
            mlflow_server.start()
    assert first_failure == ["1"], "the first try should have failed while the server was down"
    assert dr.state == "success", _states(dr)
    (ti,) = dr.get_task_instances()
    assert ti.try_number >= 2
    assert registry.current_version(client, model_name) == version
