"""The gate on a regressor and a three-class classifier: each judged by its own contract's metrics."""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient

from conveyor.core import registry
from conveyor.core.gate import STATUS_TAG, GateError, rules_from_mapping, run_gate
from tests.support.task_models import register_task_model


@pytest.fixture
def client(mlflow_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)


@pytest.mark.parametrize(
    ("task", "metrics", "failing"),
    [
        ("regression", ["rmse", "r2"], "r2: below threshold"),
        ("multiclass_classification", ["macro_f1"], "macro_f1: below threshold"),
    ],
)
def test_a_good_model_passes_and_a_worse_one_is_rejected_by_its_tasks_metrics(
    client: MlflowClient, mlflow_uri: str, task: str, metrics: list[str], failing: str
) -> None:
    name = f"{task[:5]}-{uuid.uuid4().hex[:6]}"
    register_task_model(mlflow_uri, name, task)
    first = run_gate(client, name)  # rules: the contract's gate.metrics
    assert first.status == "passed", first.reason
    assert [c.metric for c in first.checks] == metrics
    if task == "regression":
        assert first.checks[0].higher_is_better is False and first.checks[0].candidate < 1.0  # RMSE ~0.5
    registry.promote(
        client, name, first.candidate_version, reason="first", actor="test", expected_champion=None
    )
    register_task_model(mlflow_uri, name, task, good=False)
    worse = run_gate(client, name)
    assert worse.status == "rejected" and failing in worse.reason, worse.reason
    assert worse.baseline_version == first.candidate_version
    assert client.get_model_version(name, worse.candidate_version).tags[STATUS_TAG] == "rejected"


def test_rules_that_do_not_fit_the_task_and_mixed_tasks_are_errors(
    client: MlflowClient, mlflow_uri: str
) -> None:
    name = f"mixed-{uuid.uuid4().hex[:6]}"
    champion = register_task_model(mlflow_uri, name, "multiclass_classification", alias="champion")
    with pytest.raises(GateError, match="is a multiclass_classification model; the gate computes accuracy, "):
        run_gate(client, name, rules_from_mapping({"roc_auc": {"threshold": 0.5}}), candidate="champion")
    candidate = register_task_model(mlflow_uri, name, "regression")
    with pytest.raises(GateError, match=f"cannot be compared with the champion v{champion.version}"):
        run_gate(client, name)
    assert STATUS_TAG not in client.get_model_version(name, candidate.version).tags
