"""``mlflow deployments -t conveyor``, ``get_deploy_client("conveyor")`` and the ``conveyor`` CLI
drive the same real gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pandas as pd
import pytest
from mlflow.deployments import get_deploy_client
from mlflow.exceptions import MlflowException

from conveyor.clients.gateway import GatewayClient
from conveyor.local.gateway import GatewayServer
from tests.serving.conftest import ServingModels

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway_env(gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("CONVEYOR_GATEWAY_URL", gateway.url)
    monkeypatch.setenv("CONVEYOR_GATEWAY_TOKEN", gateway.token)
    return {**os.environ, "CONVEYOR_GATEWAY_URL": gateway.url, "CONVEYOR_GATEWAY_TOKEN": gateway.token}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def test_mlflow_cli_creates_updates_and_deletes_a_deployment(
    gateway_env: dict[str, str], admin: GatewayClient, serving_models: ServingModels, mlflow_uri: str
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    mlflow = [sys.executable, "-m", "mlflow", "deployments"]
    env = {**gateway_env, "MLFLOW_TRACKING_URI": mlflow_uri}
    created = _run([*mlflow, "create", "-t", "conveyor", "--name", name, "-m", serving_models.good], env)
    assert created.returncode == 0, created.stderr
    assert admin.deployment(name)["slots"]["stable"]["model_version"] == serving_models.good.rsplit("/", 1)[1]
    updated = _run(
        [
            *mlflow,
            "update",
            "-t",
            "conveyor",
            "--name",
            name,
            "-m",
            serving_models.good_too,
            "-C",
            "strategy=blue_green",
        ],
        env,
    )
    assert updated.returncode == 0, updated.stderr
    assert (
        admin.deployment(name)["slots"]["stable"]["model_version"]
        == serving_models.good_too.rsplit("/", 1)[1]
    )
    refused = _run(
        [*mlflow, "update", "-t", "conveyor", "--name", name, "-m", serving_models.good, "-C", "colour=red"],
        env,
    )
    assert refused.returncode != 0 and "unknown config key(s) ['colour']" in refused.stderr
    listed = _run(
        [*mlflow, "list", "-t", f"conveyor:/{gateway_env['CONVEYOR_GATEWAY_URL'].split('//')[1]}"], env
    )
    assert name in listed.stdout
    deleted = _run([*mlflow, "delete", "-t", "conveyor", "--name", name], env)
    assert deleted.returncode == 0, deleted.stderr
    assert not admin.exists(name)


def test_deploy_client_predicts_and_reports_failed_rollouts(
    gateway_env: dict[str, str], serving_models: ServingModels
) -> None:
    client = get_deploy_client("conveyor")
    name = f"api-{uuid.uuid4().hex[:8]}"
    created = client.create_deployment(name, serving_models.good)
    assert created["name"] == name and created["model_version"] == serving_models.good.rsplit("/", 1)[1]
    with pytest.raises(MlflowException, match="already exists"):
        client.create_deployment(name, serving_models.good)
    frame = pd.DataFrame(serving_models.rows[:5])
    predictions = client.predict(name, frame).get_predictions()
    assert list(predictions.columns) == ["delay_probability", "delayed"] and len(predictions) == 5
    assert any(d["name"] == name for d in client.list_deployments())
    with pytest.raises(MlflowException, match="ended failed: load failed"):
        client.update_deployment(name, serving_models.unloadable, config={"strategy": "blue_green"})
    assert client.get_deployment(name)["model_version"] == serving_models.good.rsplit("/", 1)[1]
    client.delete_deployment(name)
    client.delete_deployment(name)  # idempotent
    with pytest.raises(MlflowException, match="unknown deployment"):
        client.get_deployment(name)


def test_conveyor_cli_status_deploy_and_rollback(
    gateway_env: dict[str, str], fresh: str, serving_models: ServingModels
) -> None:
    cli = [sys.executable, "-m", "conveyor.cli"]
    deployed = _run(
        [*cli, "deploy", fresh, serving_models.good_too, "--strategy", "blue_green", "--wait"], gateway_env
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "loading -> switched" in deployed.stdout
    status = json.loads(_run([*cli, "status", fresh], gateway_env).stdout)
    assert status["slots"]["stable"]["model_version"] == serving_models.good_too.rsplit("/", 1)[1]
    rolled = _run([*cli, "rollback", fresh], gateway_env)
    assert rolled.returncode == 0, rolled.stderr
    assert f"stable now serves version {serving_models.good.rsplit('/', 1)[1]}" in rolled.stdout
    wrong = _run([*cli, "status", fresh], {**gateway_env, "CONVEYOR_GATEWAY_TOKEN": "nope"})
    assert wrong.returncode == 2 and "gateway answered 403" in wrong.stderr


def test_conveyor_serve_fail_on_load_error_exits_naming_the_deployment(
    mlflow_uri: str, serving_models: ServingModels, tmp_path
) -> None:
    """A data-plane process that cannot load what it was told to serve exits instead of idling unready."""
    env = {**os.environ, "CONVEYOR_GATEWAY_TOKEN": "t", "MLFLOW_TRACKING_URI": mlflow_uri}
    args = [sys.executable, "-m", "conveyor.cli", "serve", "--port", "0", "--log-url", "none"]
    args += [f"--deploy=good={serving_models.good}", "--deploy=broken=models:/no_such_model/1"]
    served = _run([*args, "--fail-on-load-error"], env)
    assert served.returncode != 0
    assert "deployment broken" in served.stderr and "no_such_model" in served.stderr
