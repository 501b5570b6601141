"""Deployment DAGs built only from Conveyor operators, run by the serving tests with ``dag.test()``."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from conveyor.operators.deploy import DeployModelOperator, InfraValidateOperator, RollbackDeploymentOperator

with DAG(
    dag_id="conveyor_test_deploy",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={
        "model_uri": Param("models:/flight_delays@challenger", type="string"),
        "deployment": Param("flights", type="string"),
        "strategy": Param("canary", enum=["canary", "blue_green", "shadow"]),
    },
) as deploy:
    infra = InfraValidateOperator(
        task_id="infra_validate", model_uri="{{ params.model_uri }}", sample_rows=30
    )
    rollout = DeployModelOperator(
        task_id="deploy",
        deployment="{{ params.deployment }}",
        model_uri="{{ params.model_uri }}",
        strategy="{{ params.strategy }}",
        steps=[25, 50, 100],
        analysis={"interval_s": 2, "count": 2, "min_requests": 10, "latency_slack_s": 0.25},
        on_pause="fail",
        poll_interval=0.5,
    )
    infra >> rollout

with DAG(
    dag_id="conveyor_test_rollback_deployment",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={
        "deployment": Param("flights", type="string"),
        "registry_model": Param("flight_delays", type="string"),
    },
) as rollback:
    RollbackDeploymentOperator(
        task_id="rollback",
        deployment="{{ params.deployment }}",
        registry_model="{{ params.registry_model }}",
        reason="canary looked fine, production did not",
    )
