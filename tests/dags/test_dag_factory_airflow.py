"""Factory-built DAGs of a second model on a real Airflow (PostgreSQL, scheduler, LocalExecutor,
triggerer), a real MLflow server and a real gateway, driven through the REST API.

The dags folder holds the demo's three files and a one-call file for ``bikes``, a regressor with
its own contract and ``airflow:`` section (prefixed DAG ids, daily partitions). Its ml_cd deploys a
real registered version to the deployment derived from its name; its ml_monitor, fed labelled
traffic the model gets badly wrong, asks *its* ml_ci to retrain on the partitions its own Variable
names. Nothing reaches the demo's DAGs or deployment. The Airflow is this module's own: the
session one loads only the project's dags/.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.clients.airflow import AirflowClient
from conveyor.local.airflow import REPO_ROOT, LocalAirflow, connection_env
from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer
from tests.support import contracts
from tests.support.task_models import register_task_model, task_table

BIKES = {
    **copy.deepcopy(contracts.REGRESSION),
    "airflow": {
        "prefix": True,
        "ci": {
            "schedule": "0 0 * * *",
            "start_date": "2011-01-01",
            "partition": {"format": "%Y-%m-%d", "default": ["2011-01-01"], "runtime_param": "day"},
            "data_gate": {"rides": "rides_suite"},
        },
        "cd": {"strategy": "blue_green", "infra_sample_rows": 20},
        "monitor": {
            "drift_backend": "scipy",
            "drift_min_rows": 50,
            "performance_min_rows": 150,
            "timeout_minutes": 5,
        },
    },
}
BIKES["model"]["name"] = "bikes"
SIX = ["ml_ci", "ml_cd", "ml_monitor", "bikes__ml_ci", "bikes__ml_cd", "bikes__ml_monitor"]


def _states(client: AirflowClient, dag_id: str, run_id: str) -> dict[str, str | None]:
    return {ti["task_id"]: ti["state"] for ti in client.task_instances(dag_id, run_id)}


@pytest.fixture(scope="module")
def dags_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("factory")
    conveyor_yml = root / "bikes" / "conf" / "base" / "conveyor.yml"
    conveyor_yml.parent.mkdir(parents=True)
    conveyor_yml.write_text(yaml.safe_dump(BIKES, sort_keys=False))
    folder = root / "dags"
    folder.mkdir()
    for name in ("ml_ci.py", "ml_cd.py", "ml_monitor.py"):
        text = (REPO_ROOT / "dags" / name).read_text()
        (folder / name).write_text(text.replace("Path(__file__).parents[1]", f"Path({str(REPO_ROOT)!r})"))
    (folder / "bikes.py").write_text(
        f'"""Airflow DAGs of the bikes model."""\n\nfrom conveyor.dags import build_dags\n\n'
        f"build_dags({str(conveyor_yml)!r})\n"
    )
    return folder


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer) -> Iterator[GatewayServer]:
    with GatewayServer(
        root=tmp_path_factory.mktemp("factory-gateway"), tracking_uri=mlflow_server.url
    ) as server:
        yield server


@pytest.fixture(scope="module")
def factory_airflow(
    tmp_path_factory: pytest.TempPathFactory,
    dags_folder: Path,
    mlflow_server: MlflowServer,
    gateway: GatewayServer,
) -> Iterator[AirflowClient]:
    env = connection_env(mlflow_server.url, gateway_url=gateway.url, gateway_token=gateway.token)
    # bikes' own Variable: what its ml_monitor asks bikes__ml_ci to retrain on.
    env["AIRFLOW_VAR_BIKES__CONVEYOR_RETRAIN_PARTITIONS"] = "2011-01-05"
    local = LocalAirflow(
        home=tmp_path_factory.mktemp("factory-airflow"), dags_folder=dags_folder, extra_env=env
    )
    with local, local.client(timeout=60.0) as client:
        yield client


@pytest.fixture(scope="module")
def bikes_version(mlflow_server: MlflowServer) -> str:
    """A registered bikes regressor the gate passed (as ml_ci's gate would have)."""
    from mlflow import MlflowClient

    from conveyor.core.gate import run_gate

    version = register_task_model(mlflow_server.url, "bikes", "regression")
    decision = run_gate(
        MlflowClient(mlflow_server.url, mlflow_server.url), "bikes", candidate=version.version
    )
    assert decision.allows_promotion, decision.reason
    return str(version.version)


def test_the_dag_processor_parses_both_models_into_six_dags(factory_airflow: AirflowClient) -> None:
    for dag_id in SIX:
        factory_airflow.wait_for_dag(dag_id, timeout=180)
    assert factory_airflow.import_errors() == []
    details = factory_airflow.dag_details("bikes__ml_ci")["params"]
    assert {"max_rmse", "min_r2"} & set(details) == {"min_r2"}  # REGRESSION: rmse has only a tolerance
    assert "rmse_tolerance" in details and "min_roc_auc" not in details


def test_bikes_ml_cd_deploys_to_its_own_deployment_and_moves_its_champion(
    factory_airflow: AirflowClient, gateway: GatewayServer, mlflow_server: MlflowServer, bikes_version: str
) -> None:
    from mlflow import MlflowClient

    from conveyor.core import registry

    factory_airflow.unpause_dag("bikes__ml_cd")
    run = factory_airflow.trigger_dag_run(
        "bikes__ml_cd", {"model_version": bikes_version, "auto_approve": True}, note="factory test"
    )
    finished = factory_airflow.wait_for_run("bikes__ml_cd", run["dag_run_id"], timeout=600)
    states = _states(factory_airflow, "bikes__ml_cd", run["dag_run_id"])
    assert finished["state"] == "success", states
    assert states["infra_validate"] == states["rollout"] == states["promote_champion"] == "success"
    assert states["deploy_staging"] == "skipped"  # the first bikes version: nothing to stage beside
    assert states["approve_production"] == states["restore_champion"] == states["fail_run"] == "skipped"
    with gateway.client() as client:
        assert client.deployment("bikes")["slots"]["stable"]["model_version"] == bikes_version
        assert not client.exists("flights")
    assert (
        registry.current_version(MlflowClient(mlflow_server.url, mlflow_server.url), "bikes") == bikes_version
    )


def test_bikes_ml_monitor_asks_bikes_ml_ci_to_retrain_on_its_own_partitions(
    factory_airflow: AirflowClient, gateway: GatewayServer, bikes_version: str
) -> None:
    """Labels the champion gets wrong by 50: its R² falls far below the floor of 0.3."""
    rows = task_table("regression", rows=200, seed=11)
    with gateway.client() as client:
        assert client.deployment("bikes")["slots"]["stable"]["model_version"] == bikes_version
        answer = client.predict(
            {"dataframe_records": rows[["x1", "x2"]].to_dict("records")}, deployment="bikes", x_request_id="m"
        )
        assert answer.status_code == 200, answer.text
        labels = [{"request_id": f"m-{i}", "label": float(y) + 50.0} for i, y in enumerate(rows["y"])]
        assert client.feedback(labels)["accepted"] == 200
    time.sleep(3)  # the gateway writes its inference log every second
    factory_airflow.unpause_dag("bikes__ml_monitor")
    run = factory_airflow.trigger_dag_run(
        "bikes__ml_monitor", {"inference_log_url": gateway.inference_log_url}
    )
    finished = factory_airflow.wait_for_run("bikes__ml_monitor", run["dag_run_id"], timeout=600)
    states = _states(factory_airflow, "bikes__ml_monitor", run["dag_run_id"])
    assert finished["state"] == "success", states
    assert states["retrain_request"] == states["trigger_ml_ci"] == "success"
    performance: dict[str, Any] = factory_airflow.xcom(
        "bikes__ml_monitor", run["dag_run_id"], "model_performance"
    )
    assert performance["decision"] is True and performance["model_name"] == "bikes"
    (retrain,) = factory_airflow.list_dag_runs("bikes__ml_ci")
    assert retrain["conf"]["partitions"] == "2011-01-05"
    assert retrain["conf"]["triggered_by"].startswith("bikes__ml_monitor/")
    assert factory_airflow.list_dag_runs("ml_ci") == []
