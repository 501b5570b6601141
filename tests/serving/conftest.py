"""Real models in a real MLflow registry and one real gateway process, shared by the serving tests."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.clients.gateway import GatewayClient
from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer

MODEL = "serving_flights"
CODE = Path(__file__).parent / "model_code"


@dataclass(frozen=True)
class ServingModels:
    good: str  # champion: trained on real January flights
    good_too: str  # same data and settings, another seed: a healthy new version (score KS ~0.1)
    shuffled: str  # trained on shuffled labels: predictions unlike the champion's
    failing: str  # loads, but every predict raises
    unloadable: str  # registered, but its load fails
    rows: list[dict]  # real held-out rows, JSON-ready (NaN -> null)


def _code_model(
    tracking_uri: str,
    name: str,
    code: Path,
    signature,
    artifacts: dict | None = None,
    eval_set: Path | None = None,
) -> str:
    """A models-from-code version; ``eval_set`` is logged where training runs log theirs."""
    import mlflow
    from mlflow import MlflowClient

    from conveyor.core.contract import CONTRACT_TAG
    from conveyor.core.tracking import EVAL_SET_ARTIFACT
    from tests.support.models import flight_contract

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_experiment("serving-tests")
    with mlflow.start_run(run_name=name):
        if eval_set is not None:
            mlflow.log_artifact(str(eval_set), artifact_path=str(Path(EVAL_SET_ARTIFACT).parent))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            signature=signature,
            artifacts=artifacts,
            registered_model_name=name,
        )
    # Stand-ins for the flight model: held to its contract, so the gateway loads them as it would.
    version = str(info.registered_model_version)
    MlflowClient().set_model_version_tag(name, version, CONTRACT_TAG, flight_contract(name).to_tag())
    return f"models:/{name}/{version}"


@pytest.fixture(scope="session")
def serving_models(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> ServingModels:
    import mlflow

    from conveyor.core.tracking import EVAL_SET_ARTIFACT
    from tests.support.models import eval_frame, register_flight_model

    url = mlflow_server.url
    good = register_flight_model(url, MODEL, alias="champion", seed=0)
    good_too = register_flight_model(url, MODEL, alias="challenger", seed=1)
    # shuffled labels and a short training: a near-constant score, far from the champion's
    shuffled = register_flight_model(
        url, MODEL, alias="shuffled", seed=2, shuffle_labels=True, max_rows=2000, max_epochs=4
    )
    signature = mlflow.models.get_model_info(f"models:/{MODEL}/{good.version}").signature
    weights = tmp_path_factory.mktemp("weights") / "weights.bin"
    weights.write_bytes(b"\x00\x01garbage")
    held_out = eval_frame().head(400)
    # Real rows to send, so infra validation of the unloadable model gets as far as the load.
    eval_set = tmp_path_factory.mktemp("eval") / Path(EVAL_SET_ARTIFACT).name
    held_out.to_parquet(eval_set, index=False)
    rows = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k != "delayed"}
        for r in held_out.to_dict("records")
    ]
    return ServingModels(
        good=f"models:/{MODEL}/{good.version}",
        good_too=f"models:/{MODEL}/{good_too.version}",
        shuffled=f"models:/{MODEL}/{shuffled.version}",
        failing=_code_model(url, "serving_failing", CODE / "failing.py", signature),
        unloadable=_code_model(
            url,
            "serving_unloadable",
            CODE / "unloadable.py",
            signature,
            {"weights": str(weights)},
            eval_set=eval_set,
        ),
        rows=rows,
    )


@pytest.fixture(scope="session")
def gateway(
    mlflow_server: MlflowServer, serving_models: ServingModels, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """One ``conveyor serve`` process; deployment ``flights`` serves the champion from the start."""
    root = tmp_path_factory.mktemp("gateway")
    server = GatewayServer(
        root=root,
        tracking_uri=mlflow_server.url,
        deployments={"flights": f"models:/{MODEL}@champion"},
        extra_args=["--max-body-bytes", "65536", "--max-string-bytes", "512", "--keep-previous-s", "120"],
    )
    with server:
        yield server


@pytest.fixture
def admin(gateway: GatewayServer) -> Iterator[GatewayClient]:
    with gateway.client() as client:
        yield client


@pytest.fixture
def fresh(admin: GatewayClient, serving_models: ServingModels) -> str:
    """A new deployment of its own (stable = champion) so tests can change traffic independently."""
    name = f"dep-{uuid.uuid4().hex[:8]}"
    admin.deploy_slot(name, serving_models.good)
    return name


def records_body(rows: list[dict]) -> bytes:
    return json.dumps({"dataframe_records": rows}).encode()


@pytest.fixture(scope="session")
def bodies(serving_models: ServingModels) -> list[bytes]:
    """One-row request bodies made of real rows, for load generators."""
    return [records_body([row]) for row in serving_models.rows]
