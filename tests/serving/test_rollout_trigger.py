"""``RolloutTrigger`` against a real gateway process that restarts while the trigger polls.

The trigger's ``run()`` generator is driven directly, as Airflow's own trigger tests do; the
gateway is a real ``conveyor serve`` on a fixed port, stopped and started again under the test.
A restart keeps the rollout (it is in the gateway's state store); a gateway that comes back on
an empty store (its file lost, another store) no longer knows it, and the trigger says so.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.clients.gateway import rollout_key
from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer
from conveyor.triggers.rollout import RolloutTrigger
from tests.serving.conftest import ServingModels

pytestmark = pytest.mark.integration
CONN = "conveyor_gateway_restarting"
# Analysis intervals far longer than a test: the canary stays at its first step, progressing.
SLOW_CANARY = {"strategy": "canary", "steps": [10, 100], "analysis": {"interval_s": 600.0, "count": 2}}


@pytest.fixture
def restartable(
    tmp_path: Path,
    mlflow_server: MlflowServer,
    serving_models: ServingModels,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[GatewayServer]:
    """A gateway of this test's own (the shared one must not restart), known as connection CONN."""
    server = GatewayServer(
        root=tmp_path / "gateway",
        tracking_uri=mlflow_server.url,
        deployments={"flights": serving_models.good},
    )
    conn = {"conn_type": "conveyor_gateway", "host": server.url, "password": server.token}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
    with server:
        yield server


def _restart_without_state(server: GatewayServer) -> None:
    """Stop, lose the state store's file, start: the gateway knows only its ``--deploy``."""
    server.stop()
    for path in server.root.glob("gateway-state.db*"):
        path.unlink()
    server.start()


def _start(server: GatewayServer, spec: dict) -> dict[str, str | None]:
    """Start a rollout; its key once it has started (its first transition is its start time)."""
    with server.client() as client:
        client.start_rollout("flights", spec)
        rollout = client.wait_rollout("flights", timeout=60, poll_s=0.1, until=("progressing", "switched"))
    return rollout_key(rollout)


def _trigger(key: dict[str, str | None], **kwargs: float) -> RolloutTrigger:
    """The trigger as the triggerer rebuilds it: from its serialized kwargs."""
    trigger = RolloutTrigger("flights", CONN, poll_interval=0.2, model_uri=key["model_uri"], **kwargs)
    trigger.started_at = key["started_at"]
    classpath, serialized = trigger.serialize()
    assert classpath == "conveyor.triggers.rollout.RolloutTrigger"
    return RolloutTrigger(**json.loads(json.dumps(serialized)))


async def test_a_restart_keeps_the_rollout_and_the_trigger_waits_on(
    restartable: GatewayServer, serving_models: ServingModels
) -> None:
    key = _start(restartable, {"model_uri": serving_models.good_too, **SLOW_CANARY})
    waiting = asyncio.create_task(anext(_trigger(key).run()))
    await asyncio.to_thread(restartable.stop)
    await asyncio.sleep(1.0)  # unreachable for a while: the trigger keeps waiting
    assert not waiting.done()
    await asyncio.to_thread(restartable.start)
    await asyncio.sleep(1.5)
    assert not waiting.done(), "the trigger stopped polling a rollout the restarted gateway resumed"
    with restartable.client() as client:
        client.rollout_action("flights", "promote")
    event = await asyncio.wait_for(waiting, timeout=30)
    assert event.payload["status"] == "succeeded"
    assert rollout_key(event.payload["rollout"]) == key


async def test_a_gateway_that_lost_its_store_fails_the_trigger_with_the_reason(
    restartable: GatewayServer, serving_models: ServingModels
) -> None:
    key = _start(restartable, {"model_uri": serving_models.good_too, **SLOW_CANARY})
    waiting = asyncio.create_task(anext(_trigger(key).run()))
    await asyncio.sleep(1.5)
    assert not waiting.done(), "the trigger stopped polling a progressing rollout"

    await asyncio.to_thread(_restart_without_state, restartable)
    event = await asyncio.wait_for(waiting, timeout=30)

    assert event.payload["status"] == "error"
    message = event.payload["message"]
    assert "no longer knows the rollout of " + serving_models.good_too in message
    assert f"started {key['started_at']}" in message and "has no rollout" in message


async def test_another_rollout_on_a_lost_store_is_not_mistaken_for_the_awaited_one(
    restartable: GatewayServer, serving_models: ServingModels
) -> None:
    lost = _start(restartable, {"model_uri": serving_models.good_too, **SLOW_CANARY})
    _restart_without_state(restartable)
    # Someone starts the same version again on the restarted gateway: same URI, another rollout.
    again = _start(restartable, {"model_uri": serving_models.good_too, "strategy": "blue_green"})
    assert again["started_at"] != lost["started_at"]

    event = await asyncio.wait_for(anext(_trigger(lost).run()), timeout=30)
    assert event.payload["status"] == "error"
    assert f"now has another rollout, started {again['started_at']}" in event.payload["message"]
    # The trigger of the rollout the gateway does know still reports it.
    event = await asyncio.wait_for(anext(_trigger(again).run()), timeout=30)
    assert event.payload["status"] == "switched"
    assert rollout_key(event.payload["rollout"]) == again


async def test_a_gateway_unreachable_past_the_bound_fails_the_trigger(
    restartable: GatewayServer, serving_models: ServingModels
) -> None:
    key = _start(restartable, {"model_uri": serving_models.good_too, **SLOW_CANARY})
    restartable.stop()
    began = time.monotonic()
    event = await asyncio.wait_for(anext(_trigger(key, unreachable_timeout=2.0).run()), timeout=30)
    waited = time.monotonic() - began
    assert event.payload["status"] == "error"
    assert "gateway unreachable for 2s" in event.payload["message"]
    assert restartable.url in event.payload["message"]
    assert 2.0 <= waited < 10.0


async def test_a_deployment_the_gateway_does_not_have_fails_at_once(
    restartable: GatewayServer, serving_models: ServingModels
) -> None:
    trigger = RolloutTrigger("gone", CONN, poll_interval=0.2, model_uri=serving_models.good_too)
    event = await asyncio.wait_for(anext(trigger.run()), timeout=10)
    assert event.payload["status"] == "error"
    assert "no longer knows the rollout" in event.payload["message"] and "404" in event.payload["message"]


def test_a_non_positive_unreachable_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="unreachable_timeout must be positive"):
        RolloutTrigger("flights", CONN, unreachable_timeout=0)
