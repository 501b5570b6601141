"""What the gateway writes to the inference log, and labels posted to /feedback, read back by the
same reader that drift monitoring uses."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from conveyor.clients.gateway import GatewayClient
from conveyor.core import inference_log
from conveyor.local.gateway import GatewayServer
from tests.serving.conftest import ServingModels

pytestmark = pytest.mark.integration


def _wait_rows(read, expected: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        frame = read()
        if len(frame) >= expected or time.monotonic() > deadline:
            return frame
        time.sleep(0.5)


def test_predictions_and_feedback_reach_the_log_and_online_accuracy(
    gateway: GatewayServer, admin: GatewayClient, fresh: str, serving_models: ServingModels
) -> None:
    rows = serving_models.rows[:3]
    request_id = uuid.uuid4().hex
    response = admin.predict({"dataframe_records": rows}, deployment=fresh, x_request_id=request_id)
    assert response.status_code == 200
    predicted = [p["delayed"] for p in response.json()["predictions"]]
    row_ids = [f"{request_id}-{i}" for i in range(3)]

    feedback = admin.feedback(
        [{"request_id": rid, "label": label} for rid, label in zip(row_ids, [1, 0, 1], strict=True)]
    )
    assert feedback == {"accepted": 3, "matched": 3}
    bad = httpx.post(gateway.url + "/feedback", json={"request_id": row_ids[0], "label": "yes"})
    assert bad.status_code == 422 and bad.json()["field"] == "label"

    now = datetime.now(UTC)
    window = (now - timedelta(hours=1), now + timedelta(hours=1))
    url = gateway.inference_log_url
    logged = _wait_rows(lambda: inference_log.read_predictions(url, *window, deployment=fresh), 3)
    logged = logged[logged["request_id"].isin(row_ids)].sort_values("request_id").reset_index(drop=True)
    assert logged["request_id"].tolist() == row_ids
    assert set(logged["slot"]) == {"stable"}
    assert set(logged["model_version"]) == {serving_models.good.rsplit("/", 1)[1]}
    assert logged["carrier"].tolist() == [r["carrier"] for r in rows]
    assert logged["delayed"].tolist() == predicted
    labels = _wait_rows(lambda: inference_log.read_feedback(url, *window), 3)
    joined = inference_log.join_feedback(logged, labels)
    assert joined.set_index("request_id").loc[row_ids, "label"].tolist() == [1, 0, 1]
