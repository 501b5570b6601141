"""Real flight models and the test DAG files, shared by the operator tests of one session."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from mlflow import MlflowClient

from conveyor.local.mlflow_server import MlflowServer

DAGS = Path(__file__).parent / "dags"
SOURCE_MODEL = "conveyor-ops-source"


@pytest.fixture(scope="session")
def flight_versions(mlflow_server: MlflowServer) -> dict[str, str]:
    """Two real torch models, registered once: ``good`` and ``worse`` (trained on shuffled labels).

    Seed 1 for the shuffled one: on this slice its AUC is far below the good model's (0.38 vs
    0.63); seed 0 happens to land a chance-level model *above* it, which would make no "worse" test.
    """
    from tests.support.models import register_flight_model

    good = register_flight_model(mlflow_server.url, SOURCE_MODEL, months=("2013-02",), alias="good")
    worse = register_flight_model(
        mlflow_server.url, SOURCE_MODEL, months=("2013-02",), alias="worse", shuffle_labels=True, seed=1
    )
    return {"good": good.version, "worse": worse.version}


@pytest.fixture
def client(mlflow_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)


@pytest.fixture
def model_name() -> str:
    return f"flights-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def add_challenger(client: MlflowClient, flight_versions: dict[str, str], model_name: str):
    """Register a copy of the good or worse model under this test's name as ``challenger``."""

    def add(kind: str) -> str:
        mv = client.copy_model_version(f"models:/{SOURCE_MODEL}/{flight_versions[kind]}", model_name)
        client.set_registered_model_alias(model_name, "challenger", mv.version)
        return mv.version

    return add


@pytest.fixture(scope="session")
def test_dags(airflow_db: Path) -> dict[str, ModuleType]:
    """The DAG files, linked into the dags folder (``dag.test()`` needs them in a bundle) and loaded."""
    modules = {}
    for path in sorted(DAGS.glob("*.py")):
        link = airflow_db / "dags" / f"conveyor_ops_{path.name}"
        if not link.exists():
            link.symlink_to(path)
        spec = importlib.util.spec_from_file_location(f"conveyor_test_dags_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[path.stem] = module
    return modules
