"""A real gateway for ml_cd, registered in the session's Airflow the way a user does it: as a connection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conveyor.clients.airflow import AirflowClient
from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer, airflow_client: AirflowClient
) -> Iterator[GatewayServer]:
    """An empty production gateway; ml_cd creates its deployment. Known to Airflow as
    ``conveyor_gateway_default`` (created through the REST API, stored in Airflow's database)."""
    with GatewayServer(root=tmp_path_factory.mktemp("gateway"), tracking_uri=mlflow_server.url) as server:
        airflow_client.create_connection(
            "conveyor_gateway_default", "conveyor_gateway", host=server.url, password=server.token
        )
        yield server
