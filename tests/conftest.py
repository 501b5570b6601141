"""Fixtures shared by every test folder: real services on free ports, stopped after the session."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.local.mlflow_server import MlflowServer

# The real-Airflow fixtures (``airflow``, ``airflow_client``), shared by the DAG and Jupyter tests.
pytest_plugins = ["tests.support.airflow"]

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # DO_NOT_TRACK=1 does not stop MLflow's
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

# Airflow reads its configuration at import time, so the in-process metadata DB used by
# ``dag.test()`` is chosen here, before any test module imports airflow.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="conveyor-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_AIRFLOW_HOME / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
(_AIRFLOW_HOME / "dags").mkdir(exist_ok=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated sqlite metadata DB for in-process ``dag.test()`` runs (not for backfills)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ
    )
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` (sqlite + served artifacts) for the whole test session."""
    with MlflowServer(root=tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture
def mlflow_uri(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points the MLflow client of this test at the session server."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_registry_uri(mlflow_server.url)
    return mlflow_server.url


@pytest.fixture
def mlflow_conn(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``mlflow_default`` as Airflow tasks see it: a JSON connection in the environment."""
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "conveyor_mlflow", "host": mlflow_uri})
    )
    return mlflow_uri
