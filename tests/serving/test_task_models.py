"""The gateway serving a regressor and a three-class classifier: scores, feedback and the online
metric come from each version's contract (MAE for the regressor, accuracy for the classes)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from starlette.testclient import TestClient

from conveyor.serving.gateway import GatewayConfig
from conveyor.serving.server import build
from tests.support.task_models import register_task_model, task_table

ADMIN = {"Authorization": "Bearer t"}


@pytest.mark.parametrize("task", ["regression", "multiclass_classification"])
def test_feedback_scores_each_task_by_its_online_metric(mlflow_uri: str, task: str) -> None:
    name = f"serve-{task[:5]}-{uuid.uuid4().hex[:6]}"
    version = register_task_model(mlflow_uri, name, task)
    rows = task_table(task, rows=60, seed=7)
    deployment = "tasks"
    app = build(GatewayConfig(admin_token="t"), {deployment: f"models:/{name}/{version.version}"}, mlflow_uri)
    with TestClient(app) as http:
        answer = http.post(
            f"/deployments/{deployment}/invocations",
            json={"dataframe_records": rows[["x1", "x2"]].to_dict("records")},
            headers={"x-request-id": "batch"},
        )
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        truth = rows["y"].tolist()
        feedback = [{"request_id": f"batch-{i}", "label": y} for i, y in enumerate(truth)]
        assert http.post("/feedback", json={"feedback": feedback}).json()["accepted"] == 60
        online = http.get(f"/admin/deployments/{deployment}", headers=ADMIN).json()["slots"]["stable"][
            "online"
        ]
        metrics = http.get("/metrics").text
    assert online["labelled"] == 60
    if task == "regression":
        expected = np.mean([abs(p["yhat"] - y) for p, y in zip(predictions, truth, strict=True)])
        assert online["metric"] == "mae" and online["value"] == pytest.approx(expected)
        assert 0.2 < online["value"] < 1.0  # noise sd 0.5: a fitted line errs by ~0.4
    else:
        expected = np.mean([p["cls"] == y for p, y in zip(predictions, truth, strict=True)])
        assert online["metric"] == "accuracy" and online["value"] == pytest.approx(expected)
        assert online["value"] > 0.6
    # The contract's score column, every row, in the histogram whose buckets fit the task: a
    # regressor's values in conveyor_prediction_value, spread over finite buckets, not all in +Inf.
    family = "conveyor_prediction_value" if task == "regression" else "conveyor_prediction_score"
    other = "conveyor_prediction_score" if task == "regression" else "conveyor_prediction_value"
    mine = [line for line in metrics.splitlines() if f'deployment="{deployment}"' in line]
    count = next(line for line in mine if line.startswith(f"{family}_count"))
    assert float(count.rsplit(" ", 1)[1]) == 60
    assert not any(line.startswith(f"{other}_count") for line in mine)
    buckets = {
        line.split('le="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in mine
        if line.startswith(f"{family}_bucket")
    }
    scores = [p["yhat" if task == "regression" else "p_top"] for p in predictions]
    finite = max(float(le) for le in buckets if le != "+Inf")
    assert max(scores) <= finite  # every value lands in a finite bucket
    assert sum(1 for count in buckets.values() if 0 < count < 60) >= 2  # and they are spread out
