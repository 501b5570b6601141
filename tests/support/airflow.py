"""Session fixtures for a real Airflow (PostgreSQL, 4 components) driven through its REST API.

Registered for every test folder by ``pytest_plugins`` in ``tests/conftest.py``, so the DAG tests
and the Jupyter tests share one Airflow per session (about 20 s to start). A folder that needs
other DAGs overrides ``airflow_dags_folder`` in its conftest; the fixture is only started when a
test asks for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.clients.airflow import AirflowClient
from conveyor.local.airflow import (
    BIKE_RENTALS_PROJECT,
    REPO_ROOT,
    LocalAirflow,
    connection_env,
    private_kedro_conf,
)
from conveyor.local.mlflow_server import MlflowServer


@pytest.fixture(scope="session")
def airflow_dags_folder() -> Path:
    """The DAGs the session's Airflow loads: the project's own by default."""
    return REPO_ROOT / "dags"


@pytest.fixture(scope="session")
def airflow(
    tmp_path_factory: pytest.TempPathFactory, airflow_dags_folder: Path, mlflow_server: MlflowServer
) -> Iterator[LocalAirflow]:
    """Airflow with LocalExecutor on PostgreSQL, connected to the session's MLflow server; both
    Kedro projects of ``dags/`` run on private copies of their configuration, so no test writes
    into a working tree's ``data/``."""
    started = time.monotonic()
    home = tmp_path_factory.mktemp("airflow")
    local = LocalAirflow(
        home=home,
        dags_folder=airflow_dags_folder,
        extra_env=connection_env(
            mlflow_server.url,
            kedro_conf_source=private_kedro_conf(home),
            bike_rentals_conf_source=private_kedro_conf(home, BIKE_RENTALS_PROJECT, name="bike_rentals"),
        ),
    )
    with local:
        print(f"\nAirflow {local.url} ready in {time.monotonic() - started:.1f}s")
        yield local


@pytest.fixture(scope="session")
def airflow_client(airflow: LocalAirflow) -> Iterator[AirflowClient]:
    """The sync REST client, logged in as admin."""
    with airflow.client(timeout=60.0) as client:
        yield client
