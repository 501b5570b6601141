"""Scoring on a real gateway process: the MLflow protocol, the answering version, and bad input."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest

from conveyor.local.gateway import GatewayServer
from tests.serving.conftest import ServingModels, records_body

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def expected(serving_models: ServingModels, mlflow_server) -> pd.DataFrame:
    """What the champion predicts in-process on the first three rows: the gateway must agree."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.url)
    model = mlflow.pyfunc.load_model(serving_models.good)
    return model.predict(pd.DataFrame(serving_models.rows[:3]))


def _post(
    gateway: GatewayServer, body: bytes | str, path: str = "/invocations", **headers: str
) -> httpx.Response:
    headers = {"content-type": "application/json", **headers}
    return httpx.post(gateway.url + path, content=body, headers=headers, timeout=30)


def test_all_four_payload_shapes_agree_with_in_process_predict(
    gateway: GatewayServer, serving_models: ServingModels, expected: pd.DataFrame
) -> None:
    rows = serving_models.rows[:3]
    columns = list(rows[0])
    shapes = {
        "dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]},
        "dataframe_records": rows,
        "instances": rows,
        "inputs": {c: [r[c] for r in rows] for c in columns},
    }
    for key, value in shapes.items():
        response = _post(gateway, json.dumps({key: value}), path="/deployments/flights/invocations")
        assert response.status_code == 200, (key, response.text)
        got = pd.DataFrame(response.json()["predictions"])
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-6, obj=key)
        assert response.headers["x-model-version"] == serving_models.good.rsplit("/", 1)[1]
        assert response.headers["x-model-slot"] == "stable"
        assert response.headers["x-model-name"] == "serving_flights"
    # list-of-lists rows take the signature's column order
    response = _post(gateway, json.dumps({"instances": [[r[c] for c in columns] for r in rows]}))
    assert response.status_code == 200
    assert [p["delayed"] for p in response.json()["predictions"]] == expected["delayed"].tolist()


def test_request_id_is_echoed_and_generated(gateway: GatewayServer, serving_models: ServingModels) -> None:
    body = records_body(serving_models.rows[:1])
    assert _post(gateway, body, **{"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    assert len(_post(gateway, body).headers["x-request-id"]) == 32


@pytest.mark.parametrize(
    ("mutate", "status", "field", "message"),
    [
        (
            lambda r: {k: v for k, v in r.items() if k != "temp"},
            422,
            "temp",
            "field 'temp' row 1: value missing",
        ),
        (lambda r: {**r, "temprature": 3.0}, 422, "temprature", "unknown field 'temprature'"),
        (lambda r: {**r, "hour": "ten"}, 422, "hour", "expected integer (long), got str 'ten'"),
        (lambda r: {**r, "distance": "far"}, 422, "distance", "expected number (double)"),
        (lambda r: {**r, "carrier": 7}, 422, "carrier", "expected string (string), got int"),
        (lambda r: {**r, "carrier": None}, 422, "carrier", "value missing"),
        (lambda r: {**r, "hour": True}, 422, "hour", "got bool"),
    ],
)
def test_invalid_rows_get_422_naming_the_field(
    gateway: GatewayServer, serving_models: ServingModels, mutate, status: int, field: str, message: str
) -> None:
    response = _post(gateway, records_body([serving_models.rows[0], mutate(serving_models.rows[1])]))
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert message in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("{not json", 400, "malformed JSON"),
        ("[1, 2]", 422, "exactly one of"),
        ('{"dataframe_records": [], "inputs": {}}', 422, "exactly one of"),
        ('{"dataframe_records": []}', 422, "holds no rows"),
        ('{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}', 422, "row 0 does not have 1 values"),
        ('{"inputs": {"carrier": ["UA", "AA"], "hour": [1]}}', 422, "different lengths"),
    ],
)
def test_malformed_payloads(gateway: GatewayServer, body: str, status: int, message: str) -> None:
    response = _post(gateway, body)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]


def test_column_absent_from_every_row(gateway: GatewayServer, serving_models: ServingModels) -> None:
    rows = [{k: v for k, v in r.items() if k != "dest"} for r in serving_models.rows[:2]]
    response = _post(gateway, records_body(rows))
    assert response.status_code == 422
    assert response.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "missing required field 'dest' (string)",
        "field": "dest",
    }


def test_nan_weather_is_accepted_as_missing(gateway: GatewayServer, serving_models: ServingModels) -> None:
    row = {**serving_models.rows[0], "temp": None, "visib": None}
    response = _post(gateway, records_body([row]))
    assert response.status_code == 200, response.text
    assert 0.0 <= response.json()["predictions"][0]["delay_probability"] <= 1.0


def test_oversized_body_is_refused_with_413(gateway: GatewayServer, serving_models: ServingModels) -> None:
    body = records_body(serving_models.rows * 2)  # well over the 64 KiB limit this gateway runs with
    assert len(body) > 65536
    response = _post(gateway, body)
    assert response.status_code == 413
    assert "larger than 65536 bytes" in response.json()["message"]
    # streamed without Content-Length: refused while reading, not after
    chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))
    streamed = httpx.post(
        gateway.url + "/invocations", content=chunks, headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


def test_unknown_deployment_method_and_content_type(
    gateway: GatewayServer, serving_models: ServingModels
) -> None:
    body = records_body(serving_models.rows[:1])
    missing = _post(gateway, body, path="/deployments/nope/invocations")
    assert missing.status_code == 404
    assert "unknown deployment 'nope'" in missing.json()["message"]
    assert httpx.get(gateway.url + "/invocations").status_code == 405
    csv = httpx.post(gateway.url + "/invocations", content=b"a,b\n1,2", headers={"content-type": "text/csv"})
    assert csv.status_code == 415


def test_health_ready_and_metrics(gateway: GatewayServer, serving_models: ServingModels) -> None:
    assert httpx.get(gateway.url + "/health").json() == {"status": "ok"}
    assert httpx.get(gateway.url + "/ready").status_code == 200
    _post(gateway, records_body(serving_models.rows[:2]))
    _post(gateway, "{broken")
    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(httpx.get(gateway.url + "/metrics").text)
        for sample in family.samples
    }
    version = serving_models.good.rsplit("/", 1)[1]
    labels = (("deployment", "flights"), ("model_version", version), ("slot", "stable"))

    def value(name: str, **extra: str) -> float:
        return samples[(name, tuple(sorted((*labels, *extra.items()))))]

    assert value("conveyor_requests_total", status="200") >= 1
    assert value("conveyor_requests_total", status="400") >= 1
    assert value("conveyor_request_latency_seconds_count") >= 1
    assert value("conveyor_request_latency_seconds_bucket", le="+Inf") == value(
        "conveyor_request_latency_seconds_count"
    )
    assert value("conveyor_prediction_score_count") >= 2  # one observation per row
    assert value("conveyor_slot_weight") == 100.0
