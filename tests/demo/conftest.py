"""One real flight model in the session's MLflow server and one real gateway serving it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer

MODEL = "demo_flights"


@pytest.fixture(scope="session")
def demo_model(mlflow_server: MlflowServer) -> str:
    from tests.support.models import register_flight_model

    version = register_flight_model(mlflow_server.url, MODEL, alias="champion", max_rows=2000, max_epochs=3)
    return f"models:/{MODEL}/{version.version}"


@pytest.fixture(scope="session")
def gateway(
    mlflow_server: MlflowServer, demo_model: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """``conveyor serve`` with deployment ``flights`` on the model; its inference log in a temp folder."""
    server = GatewayServer(
        root=tmp_path_factory.mktemp("gateway"),
        tracking_uri=mlflow_server.url,
        deployments={"flights": demo_model},
    )
    with server:
        yield server
