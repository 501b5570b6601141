"""A real Airflow with this folder's small DAGs, and the environment the extension reads.

The Jupyter tests run their own Airflow (not the session one of ``tests/dags``, which loads the
project's DAGs): their DAGs finish in seconds and one of them waits for a human approval.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.clients.airflow import AirflowClient
from conveyor.local.airflow import LocalAirflow, connection_env
from conveyor.local.mlflow_server import MlflowServer

DAGS = Path(__file__).parent / "dags"
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "jupyter"


@pytest.fixture(scope="session")
def jupyter_airflow(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer
) -> Iterator[LocalAirflow]:
    started = time.monotonic()
    local = LocalAirflow(
        home=tmp_path_factory.mktemp("jupyter-airflow"),
        dags_folder=DAGS,
        extra_env=connection_env(mlflow_server.url),
    )
    with local:
        with local.client() as client:
            for dag_id in ("conveyor_ui_params", "conveyor_ui_approval"):
                client.wait_for_dag(dag_id, timeout=120)
        print(f"\nAirflow for the Jupyter tests at {local.url}, ready in {time.monotonic() - started:.1f}s")
        yield local


@pytest.fixture(scope="session")
def jupyter_airflow_client(jupyter_airflow: LocalAirflow) -> Iterator[AirflowClient]:
    with jupyter_airflow.client(timeout=60.0) as client:
        yield client


@pytest.fixture
def conveyor_env(
    jupyter_airflow: LocalAirflow, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The variables a user (or the Jupyter server's environment) sets to reach Conveyor."""
    env = {
        "CONVEYOR_AIRFLOW_URL": jupyter_airflow.url,
        "CONVEYOR_AIRFLOW_USERNAME": jupyter_airflow.username,
        "CONVEYOR_AIRFLOW_PASSWORD": jupyter_airflow.password,
        "MLFLOW_TRACKING_URI": mlflow_server.url,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
