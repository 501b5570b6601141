"""Conveyor's Kedro plugin on a project it was not written for (tests/kedro/toy_project.py),
discovered through the ``kedro.hooks`` entry point and tracked by a real ``mlflow server``.

A good ``conveyor.yml`` registers a version with its contract; each broken piece (an unknown key,
a catalog name that does not exist, a label missing from the data, a model that does not return
the score column, a metric that does not fit the task, a failing data gate) is a clear error, and
nothing is registered.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from conveyor.core.contract import CONTRACT_TAG, ContractError
from conveyor.core.lineage import content_hash
from conveyor.core.validation import DataValidationError
from conveyor.kedro.recorder import ModelOutputError
from tests.kedro.toy_project import CONTRACT, PACKAGE, write_catalog, write_contract, write_project

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield write_project(tmp_path_factory.mktemp("toy") / "toy-rides")


@pytest.fixture
def contract(project: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A fresh contract named after the test, written by the test (``write_contract``)."""
    body = copy.deepcopy(CONTRACT)
    body["model"]["name"] = re.sub(r"[^A-Za-z0-9_]", "_", f"toy_{request.node.name[5:]}")[:60]
    yield body
    (project / "conf" / "base" / "conveyor.yml").unlink(missing_ok=True)
    shutil.rmtree(project / "conf" / "base" / "gx", ignore_errors=True)
    write_catalog(project, {})


def _run(project: Path, params: dict[str, Any] | None = None) -> None:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=params) as session:
        session.run()


def _run_count(client: MlflowClient) -> int:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(experiments, max_results=10_000))


def _held_out() -> pd.DataFrame:
    import importlib

    nodes = importlib.import_module(f"{PACKAGE}.nodes")
    return nodes.split(nodes.make_rides(600, 0))[1]


def test_a_complete_run_registers_a_version_with_its_contract(
    project: Path, contract: dict[str, Any], mlflow_uri: str
) -> None:
    write_contract(project, contract)
    _run(project, {"partition": "2024-05"})
    name = contract["model"]["name"]
    client = MlflowClient()
    version = client.get_model_version_by_alias(name, "challenger")
    stored = json.loads(version.tags[CONTRACT_TAG])
    assert stored["model"] == {**contract["model"]} and "kedro" not in stored
    assert version.tags["conveyor.partition"] == "2024-05"
    # No lineage output, no data gate: the data hash is of the rows the model is judged on.
    assert version.tags["conveyor.data_hash"] == content_hash(_held_out())
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == client.get_experiment_by_name(name).experiment_id
    eval_set = pd.read_parquet(client.download_artifacts(run.info.run_id, "evaluation/eval_set.parquet"))
    # The model's declared inputs and the label; the bookkeeping column is not what it is served.
    assert list(eval_set.columns) == ["temp", "hour", "rides"]
    pd.testing.assert_frame_equal(eval_set, _held_out()[["temp", "hour", "rides"]])
    reference = pd.read_parquet(
        client.download_artifacts(run.info.run_id, "reference/reference_sample.parquet")
    )
    assert list(reference.columns) == ["temp", "hour", "rides"] and len(reference) == 200
    metrics = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/evaluation/metrics.json"))
    assert run.data.metrics["rmse"] == pytest.approx(metrics["rmse"]) and metrics["rmse"] < 5
    predictions = mlflow.pyfunc.load_model(f"models:/{name}@challenger").predict(eval_set.head(3))
    assert list(predictions.columns) == ["predicted_rides"]


def test_a_project_without_conveyor_yml_runs_as_before(
    project: Path, contract: dict[str, Any], mlflow_uri: str
) -> None:
    client = MlflowClient()
    before = _run_count(client)
    _run(project)
    assert _run_count(client) == before


def test_a_contract_without_a_kedro_section_registers_nothing(
    project: Path, contract: dict[str, Any], mlflow_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    del contract["kedro"]
    write_contract(project, contract)
    client = MlflowClient()
    before = _run_count(client)
    _run(project)
    assert _run_count(client) == before
    assert "has no kedro: section" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["kedro"].update(modle="weights"), "unknown key kedro.modle"),
        (
            lambda c: c["kedro"].update(eval_set="held_outt"),
            "kedro.eval_set 'held_outt': not a catalog entry",
        ),
        (lambda c: c["kedro"].update(log_model=f"{PACKAGE}.nodes:no_such"), "has no function 'no_such'"),
        (lambda c: c["kedro"].update(log_model="toy_missing.nodes:log"), "cannot import 'toy_missing.nodes'"),
        (lambda c: c["kedro"].update(alias="latest"), "reserved by MLflow"),
        (lambda c: c["gate"]["metrics"].update(roc_auc={"threshold": 0.7}), "roc_auc"),
        (lambda c: c["model"].update(task="regresion"), "model.task 'regresion' is not one of"),
    ],
    ids=["unknown-key", "catalog-typo", "no-function", "no-module", "reserved-alias", "metric-task", "task"],
)
def test_bad_yml_stops_before_any_node(
    project: Path, contract: dict[str, Any], mlflow_uri: str, change: Any, message: str
) -> None:
    change(contract)
    write_contract(project, contract)
    client = MlflowClient()
    before = _run_count(client)
    with pytest.raises(ContractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _run(project)
    assert _run_count(client) == before, "an MLflow run was started"
    assert client.search_registered_models(f"name = '{contract['model']['name']}'") == []


def _failed_run(client: MlflowClient, name: str) -> Any:
    (run,) = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert run.info.status == "FAILED"
    return run


def test_a_label_missing_from_the_eval_set_stops_before_training(
    project: Path, contract: dict[str, Any], mlflow_uri: str
) -> None:
    contract["model"]["label"] = "rides_total"
    write_contract(project, contract)
    with pytest.raises(ContractError, match=r"model\.label 'rides_total' is not a column of kedro\.eval_set"):
        _run(project)
    client = MlflowClient()
    name = contract["model"]["name"]
    run = _failed_run(client, name)
    assert "rides_total" in run.data.tags["conveyor.error"]
    assert client.search_logged_models([run.info.experiment_id]) == []  # the model was never logged
    assert client.search_registered_models(f"name = '{name}'") == []


def test_a_model_without_the_score_column_is_not_registered(
    project: Path, contract: dict[str, Any], mlflow_uri: str
) -> None:
    contract["kedro"]["log_model"] = f"{PACKAGE}.nodes:log_mislabelled_model"
    write_contract(project, contract)
    with pytest.raises(ModelOutputError, match="predict returned no 'predicted_rides' column") as err:
        _run(project)
    assert "rides_forecast" in str(err.value) and "Nothing was registered" in str(err.value)
    client = MlflowClient()
    name = contract["model"]["name"]
    _failed_run(client, name)
    assert client.search_registered_models(f"name = '{name}'") == []


def test_the_data_gate_validates_a_dataset_when_it_is_loaded(
    project: Path, contract: dict[str, Any], mlflow_uri: str
) -> None:
    """``kedro.data_gate`` needs no node: the suite runs on the dataset as the first node loads it."""
    gx = project / "conf" / "base" / "gx"
    gx.mkdir()
    suite = {
        "name": "rides_suite",
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "hour", "min_value": 0, "max_value": 12},
                "severity": "critical",
            },
        ],
    }
    (gx / "rides.json").write_text(json.dumps(suite))
    write_catalog(project, {"rides_suite": {"type": "json.JSONDataset", "filepath": str(gx / "rides.json")}})
    contract["kedro"]["data_gate"] = {"rides": "rides_suite"}
    write_contract(project, contract)
    with pytest.raises(DataValidationError, match="expect_column_values_to_be_between on column 'hour'"):
        _run(project)
    client = MlflowClient()
    name = contract["model"]["name"]
    run = _failed_run(client, name)
    report = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/validation/data_validation_report.json")
    assert report["success"] is False and report["critical_failures"] == 1
    assert client.search_logged_models([run.info.experiment_id]) == []

    # The same gate with the real range passes, and the version's data hash is the gated input's.
    suite["expectations"][0]["kwargs"]["max_value"] = 23
    (gx / "rides.json").write_text(json.dumps(suite))
    _run(project)
    version = client.get_model_version_by_alias(name, "challenger")
    assert len(version.tags["conveyor.data_hash"]) == 64
    assert version.tags["conveyor.data_hash"] != content_hash(_held_out())
