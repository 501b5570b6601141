"""The deployment operators in real DAG runs (``dag.test()``) against the real gateway and MLflow."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from mlflow import MlflowClient

from conveyor.clients.gateway import GatewayClient
from conveyor.core import registry
from conveyor.core.gate import STATUS_TAG
from conveyor.local.gateway import GatewayServer
from conveyor.local.loadgen import BackgroundLoad
from tests.serving.conftest import ServingModels

pytestmark = pytest.mark.integration
DAG_FILE = Path(__file__).parent / "dags" / "deploy.py"


@pytest.fixture(scope="module")
def dags(airflow_db: Path) -> ModuleType:
    link = airflow_db / "dags" / "conveyor_serving_deploy.py"
    if not link.exists():
        link.symlink_to(DAG_FILE)
    spec = importlib.util.spec_from_file_location("conveyor_serving_test_dags", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def connections(gateway: GatewayServer, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway_conn = {"conn_type": "conveyor_gateway", "host": gateway.url, "password": gateway.token}
    monkeypatch.setenv("AIRFLOW_CONN_CONVEYOR_GATEWAY_DEFAULT", json.dumps(gateway_conn))
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "conveyor_mlflow", "host": mlflow_uri})
    )


def _states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def test_infra_validation_then_canary_under_load_succeeds_or_rolls_back(
    dags: ModuleType,
    connections: None,
    gateway: GatewayServer,
    admin: GatewayClient,
    fresh: str,
    serving_models: ServingModels,
    bodies: list[bytes],
) -> None:
    path = f"/deployments/{fresh}/invocations"
    with BackgroundLoad(gateway.url, bodies, concurrency=4, path=path) as load:
        load.wait_for(20)
        bad = dags.deploy.test(run_conf={"model_uri": serving_models.shuffled, "deployment": fresh})
        good = dags.deploy.test(run_conf={"model_uri": serving_models.good_too, "deployment": fresh})
    assert _states(bad) == {"infra_validate": "success", "deploy": "failed"}
    assert _states(good) == {"infra_validate": "success", "deploy": "success"}
    assert all(o.ok for o in load.outcomes)
    deployment = admin.deployment(fresh)
    assert deployment["slots"]["stable"]["model_version"] == serving_models.good_too.rsplit("/", 1)[1]
    report = next(t for t in good.get_task_instances() if t.task_id == "infra_validate").xcom_pull(
        task_ids="infra_validate"
    )
    assert (
        report["passed"]
        and report["rows"] == 30
        and report["model_version"] == serving_models.good_too.rsplit("/", 1)[1]
    )


def test_infra_validation_refuses_a_model_that_does_not_load(
    dags: ModuleType,
    connections: None,
    admin: GatewayClient,
    fresh: str,
    serving_models: ServingModels,
    capfd: pytest.CaptureFixture[str],
) -> None:
    dr = dags.deploy.test(run_conf={"model_uri": serving_models.unloadable, "deployment": fresh})
    assert _states(dr) == {"infra_validate": "failed", "deploy": "upstream_failed"}
    task_log = "".join(capfd.readouterr())  # the task runner logs to the process's streams
    # The sandbox tried the load (the run logged real rows to send), and its error is reported.
    assert "is not servable: load failed" in task_log
    assert "weights file is corrupt" in task_log
    assert (
        admin.deployment(fresh)["slots"]["stable"]["model_version"] == serving_models.good.rsplit("/", 1)[1]
    )


def test_rollback_operator_restores_deployment_and_registry_alias(
    dags: ModuleType, connections: None, admin: GatewayClient, fresh: str, serving_models: ServingModels
) -> None:
    client = MlflowClient()
    name = f"rollback-{fresh}"
    versions = []
    for uri in (serving_models.good, serving_models.good_too):
        mv = client.copy_model_version(uri, name)
        client.set_model_version_tag(name, mv.version, STATUS_TAG, "passed")
        versions.append(mv.version)
    registry.promote(client, name, versions[0], reason="first", actor="test", expected_champion=None)
    registry.promote(client, name, versions[1], reason="second", actor="test", expected_champion=versions[0])
    admin.start_rollout(fresh, {"model_uri": serving_models.good_too, "strategy": "blue_green"})
    assert admin.wait_rollout(fresh, timeout=60, poll_s=0.2)["state"] == "switched"

    dr = dags.rollback.test(run_conf={"deployment": fresh, "registry_model": name})
    assert _states(dr) == {"rollback": "success"}
    assert (
        admin.deployment(fresh)["slots"]["stable"]["model_version"] == serving_models.good.rsplit("/", 1)[1]
    )
    assert registry.current_version(client, name) == versions[0]
    entry = registry.history(client, name)[-1]
    assert (entry.action, entry.reason) == ("rollback", "canary looked fine, production did not")


def test_a_blue_green_switch_ends_in_the_worker_and_a_canary_defers_once_it_analyses(
    connections: None, admin: GatewayClient, fresh: str, serving_models: ServingModels
) -> None:
    """Only a rollout waiting on analysis goes to the triggerer: a trigger that fires seconds after
    its deferral would meet Airflow 3.3's stale executor event (apache/airflow#71580)."""
    from airflow.sdk.exceptions import TaskDeferred

    from conveyor.operators.deploy import DeployModelOperator

    switch = DeployModelOperator(
        task_id="switch", deployment=fresh, model_uri=serving_models.good_too, strategy="blue_green"
    )
    rollout = switch.execute({})
    assert rollout["state"] == "switched", rollout["transitions"]
    assert (
        admin.deployment(fresh)["slots"]["stable"]["model_version"]
        == serving_models.good_too.rsplit("/", 1)[1]
    )
    admin.rollout_action(fresh, "promote")

    canary = DeployModelOperator(
        task_id="canary",
        deployment=fresh,
        model_uri=serving_models.good,
        analysis={"interval_s": 60, "count": 2},
    )
    with pytest.raises(TaskDeferred) as deferred:
        canary.execute({})
    trigger = deferred.value.trigger
    shown = admin.deployment(fresh)["rollout"]
    assert shown["state"] == "progressing" and trigger.model_uri == serving_models.good
    # The trigger logs only what the worker has not logged already.
    assert trigger.seen == len(shown["transitions"]) and trigger.started_at == shown["transitions"][0]["at"]
    admin.rollout_action(fresh, "rollback")


def test_a_paused_rollout_waited_on_defers_until_a_person_moves_it_on(
    connections: None, admin: GatewayClient, fresh: str, serving_models: ServingModels
) -> None:
    """``on_pause="wait"``: the task waits in the triggerer for the decision, and the trigger
    does not fire again while the rollout stays paused (it used to, every poll, forever)."""
    import asyncio

    from airflow.sdk.exceptions import AirflowException, TaskDeferred

    from conveyor.operators.deploy import DeployModelOperator

    starved = {"interval_s": 0.5, "count": 1, "min_requests": 10_000}  # no traffic: inconclusive
    admin.start_rollout(fresh, {"model_uri": serving_models.good_too, "analysis": starved})
    paused = admin.wait_rollout(fresh, timeout=60, poll_s=0.1)
    assert paused["state"] == "paused", paused["transitions"]

    operator = DeployModelOperator(
        task_id="rollout", deployment=fresh, model_uri=serving_models.good_too, poll_interval=0.2
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute_complete({}, {"status": "paused", "rollout": paused})
    trigger = deferred.value.trigger
    assert "paused" not in trigger.until

    async def decision() -> dict:
        waiting = asyncio.ensure_future(anext(trigger.run()))
        await asyncio.sleep(1.5)
        assert not waiting.done(), "the trigger fired again on a rollout that is still paused"
        await asyncio.to_thread(admin.rollout_action, fresh, "rollback")
        return (await asyncio.wait_for(waiting, timeout=30)).payload

    event = asyncio.run(decision())
    assert event["status"] == "rolled_back"
    with pytest.raises(AirflowException, match="ended rolled_back: rolled back by a person"):
        operator.execute_complete({}, event)
