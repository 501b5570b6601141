"""Drift detectors of a regressor and a three-class classifier: inputs and score from the contract."""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient

from conveyor.core.drift import DriftConfig
from conveyor.core.drift.model_store import FEATURES, PREDICTIONS, model_detector
from tests.support.task_models import register_task_model, task_table


@pytest.mark.parametrize(("task", "score"), [("regression", "yhat"), ("multiclass_classification", "p_top")])
def test_detectors_test_the_inputs_and_the_contracts_score(mlflow_uri: str, task: str, score: str) -> None:
    client = MlflowClient(mlflow_uri, mlflow_uri)
    name = f"drift-{task[:5]}-{uuid.uuid4().hex[:6]}"
    version = str(register_task_model(mlflow_uri, name, task).version)
    config = DriftConfig(backend="scipy")
    inputs = model_detector(client, name, version, FEATURES, config)
    assert set(inputs.schema.features) == {"x1", "x2"}  # the label y is not an input
    predictions = model_detector(client, name, version, PREDICTIONS, config)
    assert predictions.schema.features == (score,)
    shifted = task_table(task, rows=300, seed=3).assign(x1=lambda f: f["x1"] + 2.0)
    assert inputs.check(shifted).drifted_features == ["x1"]
