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
        ('{"inputs": {"carrier": [], "hour": []}}', 422, "'inputs' holds no rows"),
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
    long = _post(gateway, body, path="/deployments/" + "n" * 4000 + "/invocations")
    assert long.status_code == 404 and "n" * 100 not in long.json()["message"]  # a short prefix only
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


def _with_raw(row: dict, field: str, token: str) -> bytes:
    """A one-row body whose ``field`` holds a raw JSON token (json.dumps never writes 1e400)."""
    text = json.dumps({"dataframe_records": [{**row, field: "__RAW__"}]})
    return text.replace('"__RAW__"', token).encode()


@pytest.mark.parametrize(
    ("field", "token", "message"),
    [
        ("hour", str(2**70), "is out of range for a 64-bit integer"),
        ("hour", str(-(2**63) - 1), "is out of range for a 64-bit integer"),
        ("temp", "1e400", "is out of range for a 64-bit float"),  # Python parses it as inf
        ("temp", "-Infinity", "is out of range for a 64-bit float"),
        ("temp", "NaN", "is NaN; send null for a missing value"),
        ("distance", str(2**1100), "is out of range for a 64-bit float"),
        (
            "carrier",
            json.dumps("x" * 513),
            "is 513 bytes long, over the limit of 512 bytes",
        ),  # --max-string-bytes
        ("carrier", json.dumps("é" * 600), "is 1200 bytes long"),
        ("carrier", '"\\ud800"', "lone surrogate"),
    ],
)
def test_values_that_do_not_fit_their_column_get_422_naming_the_field(
    gateway: GatewayServer, serving_models: ServingModels, field: str, token: str, message: str
) -> None:
    """Before: 2**70 answered 500 (OverflowError), NaN/Infinity were scored and answered 200."""
    response = _post(gateway, _with_raw(serving_models.rows[0], field, token))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and message in body["message"]
    assert len(body["message"]) < 200  # the offending value is echoed as a short prefix only


def test_pathological_json_is_400_and_the_gateway_keeps_answering(
    gateway: GatewayServer, serving_models: ServingModels
) -> None:
    deep = b'{"inputs": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    for body, message in [
        (deep, "nested too deeply"),
        (b'{"inputs": 1' + b"0" * 5000 + b"}", "malformed JSON"),
    ]:
        response = _post(gateway, body)
        assert response.status_code == 400, response.text[:300]
        assert message in response.json()["message"]
    assert _post(gateway, records_body(serving_models.rows[:1])).status_code == 200


def test_request_ids_are_validated(gateway: GatewayServer, serving_models: ServingModels) -> None:
    body = records_body(serving_models.rows[:1])
    for bad in ["has space", "a" * 129, "tab\there"]:
        response = _post(gateway, body, **{"x-request-id": bad})
        assert response.status_code == 422, bad
        assert response.json()["field"] == "x-request-id"
        assert "printable ASCII" in response.json()["message"]
        assert response.headers["x-request-id"] != bad  # a fresh id, never the refused one
    ok = "order:42/leg-1_a"
    assert _post(gateway, body, **{"x-request-id": ok}).headers["x-request-id"] == ok
    assert _post(gateway, body, **{"x-request-id": "a" * 128}).status_code == 200


@pytest.fixture(scope="module")
def nan_model(mlflow_server, serving_models: ServingModels, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registered model that loads and answers every row with a NaN score."""
    import mlflow

    from tests.serving.conftest import _code_model

    code = tmp_path_factory.mktemp("nan_model") / "nan_model.py"
    code.write_text(
        "import mlflow\nimport pandas as pd\nfrom mlflow.pyfunc import PythonModel\n\n\n"
        "class NanModel(PythonModel):\n"
        "    def predict(self, context, model_input, params=None):\n"
        "        n = len(model_input)\n"
        "        return pd.DataFrame({'delay_probability': [float('nan')] * n, 'delayed': [0] * n})\n\n\n"
        "mlflow.models.set_model(NanModel())\n"
    )
    signature = mlflow.models.get_model_info(serving_models.good).signature
    return _code_model(mlflow_server.url, "serving_nan", code, signature)


def test_a_non_finite_score_is_never_answered_200(
    gateway: GatewayServer, admin, fresh: str, serving_models: ServingModels, nan_model: str
) -> None:
    """NaN from the canary: stable answers (the canary is charged an error); NaN from stable: 500."""
    body = records_body(serving_models.rows[:2])
    admin.deploy_slot(fresh, nan_model, slot="canary")
    admin.set_weights(fresh, canary=100)
    answer = _post(gateway, body, path=f"/deployments/{fresh}/invocations")
    assert answer.status_code == 200 and answer.headers["x-model-slot"] == "stable"
    assert all(0 <= p["delay_probability"] <= 1 for p in answer.json()["predictions"])

    broken = f"{fresh}-nan"
    admin.deploy_slot(broken, nan_model)
    failed = _post(gateway, body, path=f"/deployments/{broken}/invocations")
    assert failed.status_code == 500
    assert failed.json()["message"] == (
        "prediction failed: ModelOutputError: output 'delay_probability' row 0 is nan, not a finite value"
    )
    # the real champion outputs NaN for a valid double just above float32's largest (it computes in
    # float32; Hypothesis found this one): before, that was answered 200 with a null score
    absurd = records_body([{**serving_models.rows[0], "dewp": 3.4028235677973366e38}])
    assert _post(gateway, absurd, path=f"/deployments/{fresh}/invocations").status_code == 500
    from prometheus_client.parser import text_string_to_metric_families

    errors = {
        (s.labels["deployment"], s.labels["slot"]): s.value
        for family in text_string_to_metric_families(httpx.get(gateway.url + "/metrics").text)
        for s in family.samples
        if s.name == "conveyor_requests_total" and s.labels.get("status") == "500"
    }
    assert errors[(fresh, "canary")] >= 1 and errors[(broken, "stable")] == 1
    admin.delete(broken)
