"""Fixtures shared by every test folder: real services on free ports, stopped after the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from conveyor.local.mlflow_server import MlflowServer

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


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
