"""Property-based tests of every body the gateway takes: scoring, feedback and admin.

Hypothesis sends hostile bodies (values out of their column's range, non-finite numbers, lone
surrogates, pathological JSON, wrong types in every admin field) to the gateway app with a real
registered model, and checks after each one that the gateway refused it the documented way or
answered it correctly: never a 5xx, every error body names its code (and the field at fault),
a known-good request still gets the same prediction, and a refused admin request changed nothing.

Most examples run in-process (``httpx.ASGITransport``, the app on its own event loop thread: a few
milliseconds each); a short run goes to a real ``conveyor serve`` process over TCP. The examples
are derandomized so a CI failure reproduces; the whole file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.local.gateway import GatewayServer
from conveyor.serving.app import create_app
from conveyor.serving.gateway import Gateway, GatewayConfig
from tests.serving.conftest import ServingModels, records_body

pytestmark = pytest.mark.integration

TOKEN = "property-token"
LIMIT = 65536  # the body limit of both gateways under test
DEPLOYMENT = "flights"
ADMIN = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}


def _profile(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---- the gateways under test ---------------------------------------------------------------------
class InProcess:
    """The gateway's ASGI app on an event loop of its own, driven by a blocking ``request``."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        transport = httpx.ASGITransport(app=create_app(gateway))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://gateway")

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def request(self, method: str, path: str, content: bytes = b"", headers: Any = None) -> httpx.Response:
        return self.run(self.client.request(method, path, content=content, headers=headers))

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.gateway.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def app(mlflow_server, serving_models: ServingModels) -> InProcess:
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_registry_uri(mlflow_server.url)
    gateway = Gateway(GatewayConfig(admin_token=TOKEN, max_body_bytes=LIMIT))
    inproc = InProcess(gateway)
    inproc.run(gateway.start(controller=True))
    inproc.run(gateway.deploy_slot(DEPLOYMENT, "stable", serving_models.good))
    yield inproc
    inproc.close()


@pytest.fixture(scope="module")
def fields(app: InProcess) -> dict[str, str]:
    """The champion's input columns and their MLflow types, from the signature the gateway loaded."""
    schema = app.gateway.deployments[DEPLOYMENT].slots["stable"].model.schema
    return {f.name: f.type for f in schema.fields}


@pytest.fixture(scope="module")
def known_good(app: InProcess, serving_models: ServingModels) -> tuple[bytes, Any]:
    """A valid request and its answer before any hostile example: every later answer must match."""
    body = records_body(serving_models.rows[:2])
    response = app.request("POST", "/invocations", body, {"content-type": "application/json"})
    assert response.status_code == 200, response.text
    return body, response.json()


# ---- what every answer must satisfy --------------------------------------------------------------
def check_answer(
    response: httpx.Response, field: str | None = None, model: Any = None, rows: Any = None
) -> Any:
    """No 5xx; errors are ``{"error_code", "message"[, "field"]}`` with a bounded message.

    The one 5xx allowed is the documented model failure, and only where the model itself, called
    in-process through MLflow on the same rows, returns a non-finite score: input valid for the
    signature (``dewp: 3.4e38`` is a valid double) that the model cannot score.
    """
    body = response.json()
    if response.status_code == 500 and model is not None and rows:
        assert body["message"].startswith("prediction failed: ModelOutputError: output"), body
        direct = model.predict(pd.DataFrame(rows))["delay_probability"]
        assert not np.isfinite(direct.to_numpy(dtype=float)).all(), (body, direct)
        return body
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert isinstance(body.get("error_code"), str) and isinstance(body.get("message"), str), body
        assert len(body["message"]) < 1200, "a hostile value was echoed whole"
        if response.status_code == 422 and field is not None:
            assert body.get("field") == field, body
    return body


def check_predictions(body: Any, rows: int) -> None:
    predictions = body["predictions"]
    assert len(predictions) == rows
    for row in predictions:
        assert math.isfinite(row["delay_probability"]) and 0 <= row["delay_probability"] <= 1, row
        assert row["delayed"] in (0, 1), row


def still_good(request: Callable[..., httpx.Response], known: tuple[bytes, Any]) -> None:
    body, expected = known
    response = request("POST", "/invocations", body, {"content-type": "application/json"})
    assert response.status_code == 200 and response.json() == expected, response.text[:500]


# ---- hostile values ------------------------------------------------------------------------------
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),  # NaN and +-inf included: json.dumps writes them as NaN/Infinity literals
    st.text(max_size=12),
)
EDGES = st.sampled_from(
    [
        2**31,
        -(2**31) - 1,
        2**63,
        -(2**63) - 1,
        2**70,
        1e308,
        -1e308,
        3.5e38,
        float("nan"),
        float("inf"),
        float("-inf"),
        "\ud800",  # a lone surrogate: valid JSON escape, not valid Unicode
        "x" * 1025,
        "é" * 600,  # 1,200 bytes in 600 characters
        "",
        [],
        {},
        [[[1]]],
    ]
)
VALUES = st.one_of(
    SCALARS,
    EDGES,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=4), SCALARS, max_size=2),
)
# JSON tokens that json.dumps never writes but clients may: 1e400 parses as inf in Python.
RAW_TOKENS = st.sampled_from(
    ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1" + "0" * 5000, "0.1e-400", "-0", "1E2"]
)
SHAPES = ("dataframe_records", "dataframe_split", "instances", "inputs")


def encode(shape: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    columns = list(dict.fromkeys(name for row in rows for name in row))
    if shape == "dataframe_split":
        return {shape: {"columns": columns, "data": [[row.get(c) for c in columns] for row in rows]}}
    if shape == "inputs":
        return {shape: {c: [row.get(c) for row in rows] for c in columns}}
    return {shape: rows}


# ---- scoring -------------------------------------------------------------------------------------
@st.composite
def mutated_request(
    draw: st.DrawFn, rows: list[dict], fields: dict[str, str]
) -> tuple[bytes, list[dict], str]:
    """Real rows with one field of one row set to a hostile value: ``(body, rows, field at fault)``."""
    # up to 12 rows: columns of 8 or more values take the gateway's bulk check, shorter ones its walk
    picked = [dict(rows[i]) for i in draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=12))]
    target = picked[draw(st.integers(0, len(picked) - 1))]
    field = draw(st.sampled_from(sorted(fields)))
    how = draw(st.sampled_from(["value", "raw", "drop", "extra"]))
    if how == "extra":
        field = draw(st.text(min_size=1, max_size=80).filter(lambda name: name not in fields))
        target[field] = 1
    elif how == "drop":
        del target[field]
    else:
        target[field] = draw(VALUES) if how == "value" else "__RAW__"
    shape = draw(st.sampled_from(SHAPES))
    text = json.dumps(encode(shape, picked))  # allow_nan: NaN/Infinity literals, as hostile clients send
    if how == "raw":
        text = text.replace('"__RAW__"', draw(RAW_TOKENS))
    return text.encode(), picked if how == "value" else [], field[:64]


_INT_BITS = {"long": 64, "integer": 32}
_FLOAT_MAX = {"double": sys.float_info.max, "float": float(np.finfo(np.float32).max)}


def _fits(value: Any, column_type: str) -> bool:
    """Whether a JSON value fits an MLflow column type, written out independently of the gateway."""
    if value is None:
        return column_type in _FLOAT_MAX
    if column_type in _INT_BITS:
        bits = _INT_BITS[column_type]
        return type(value) is int and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)
    if column_type in _FLOAT_MAX:
        return type(value) in (int, float) and abs(value) <= _FLOAT_MAX[column_type]  # NaN: False
    if column_type == "string":
        try:
            return type(value) is str and len(value.encode("utf-8")) <= 1024
        except UnicodeEncodeError:
            return False
    return type(value) is bool


def test_scoring_refuses_hostile_values_by_field(
    app: InProcess, serving_models: ServingModels, fields: dict[str, str], known_good
) -> None:
    model = app.gateway.deployments[DEPLOYMENT].slots["stable"].model.pyfunc

    @_profile(250)
    @given(mutated_request(serving_models.rows[:50], fields))
    def check(case: tuple[bytes, list[dict], str]) -> None:
        body, rows, field = case
        response = app.request("POST", "/invocations", body, {"content-type": "application/json"})
        answer = check_answer(response, field, model, rows)
        if rows:  # one value set on purpose: refused exactly when it does not fit its column
            misfits = [row[field] for row in rows if not _fits(row[field], fields[field])]
            assert (response.status_code == 422) == bool(misfits), (misfits[:1], response.text[:300])
        if response.status_code == 200:
            check_predictions(answer, len(answer["predictions"]))
            assert not rows or len(answer["predictions"]) == len(rows)
        else:
            assert response.status_code in (400, 422, 500), response.text[:300]
        still_good(app.request, known_good)

    check()


JSON_TREES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=16,
)


@st.composite
def pathological_body(draw: st.DrawFn, good: bytes) -> bytes:
    kind = draw(st.sampled_from(["tree", "under_key", "deep", "bytes", "truncated", "literal"]))
    if kind == "tree":
        return json.dumps(draw(JSON_TREES)).encode()
    if kind == "under_key":
        return json.dumps({draw(st.sampled_from([*SHAPES, "params"])): draw(JSON_TREES)}).encode()
    if kind == "deep":
        depth = draw(st.integers(500, 30_000))
        return b'{"inputs": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "truncated":
        return good[: draw(st.integers(0, len(good) - 1))]
    return b'{"inputs": {"temp": [' + draw(RAW_TOKENS).encode() + b"]}}"


HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=200
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "text/csv", "", "text/plain"]
)


def test_scoring_survives_pathological_bodies_and_headers(
    app: InProcess, serving_models: ServingModels, known_good
) -> None:
    good = known_good[0]

    @_profile(150)
    @given(
        st.one_of(pathological_body(good), st.just(good)),
        st.one_of(st.none(), HEADER_TEXT),
        st.one_of(st.none(), CONTENT_TYPES),
    )
    def check(body: bytes, request_id: str | None, content_type: str | None) -> None:
        headers = []
        if request_id is not None:
            headers.append((b"x-request-id", request_id.encode("latin-1")))
        if content_type is not None:
            headers.append((b"content-type", content_type.encode()))
        response = app.request("POST", "/deployments/flights/invocations", body, headers)
        media = (content_type or "application/json").split(";")[0].strip().lower()
        id_ok = not request_id or re.fullmatch(r"[!-~]{1,128}", request_id) is not None
        answer = check_answer(response, None if id_ok else "x-request-id")
        if media != "application/json":
            assert response.status_code == 415
        elif not id_ok:
            assert response.status_code == 422 and answer["field"] == "x-request-id"
        if response.status_code == 200:
            check_predictions(answer, 2 if body == good else len(answer["predictions"]))
            if request_id:
                assert response.headers["x-request-id"] == request_id
        still_good(app.request, known_good)

    check()


def test_oversized_bodies_are_413_on_every_body_taking_route(app: InProcess, known_good) -> None:
    big = b'{"inputs": {"temp": [' + b"1," * LIMIT + b"1]}}"
    routes = [
        ("POST", "/invocations"),
        ("POST", "/feedback"),
        ("PUT", "/admin/deployments/flights/slots/canary"),
        ("PUT", "/admin/deployments/flights/weights"),
        ("POST", "/admin/deployments/flights/promote"),
        ("POST", "/admin/deployments/flights/rollback"),
        ("POST", "/admin/deployments/flights/rollouts"),
    ]

    async def streamed():  # no Content-Length: refused while reading
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    for method, path in routes:
        for content in (big, streamed()):
            response = app.request(method, path, content, ADMIN)
            assert response.status_code == 413, (path, response.text[:200])
            assert response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        wrong_type = app.request(method, path, b"a,b", {**ADMIN, "content-type": "text/csv"})
        assert wrong_type.status_code == 415, (path, wrong_type.text[:200])
    still_good(app.request, known_good)


# ---- feedback ------------------------------------------------------------------------------------
ROW_ID = re.compile(r"[!-~]{1,128}(?:-[0-9]{1,9})?")
FEEDBACK_ITEM = st.one_of(
    st.fixed_dictionaries(
        {
            "request_id": st.one_of(
                st.text(max_size=140), st.sampled_from(["a" * 129, "ok-1", "sp ace"]), VALUES
            )
        },
        optional={"label": st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, 1]), VALUES)},
    ),
    VALUES,
)


def _valid_item(item: Any) -> bool:
    """What the gateway accepts, written out independently of its code."""
    return (
        isinstance(item, dict)
        and set(item) == {"request_id", "label"}
        and isinstance(item["request_id"], str)
        and ROW_ID.fullmatch(item["request_id"]) is not None
        and (
            (type(item["label"]) is int and -(2**63) <= item["label"] < 2**63)
            or (type(item["label"]) is float and math.isfinite(item["label"]))
        )
    )


def test_feedback_accepts_exactly_the_valid_bodies(app: InProcess, known_good) -> None:
    @_profile(150)
    @given(
        st.one_of(
            FEEDBACK_ITEM,
            st.builds(lambda items: {"feedback": items}, st.lists(FEEDBACK_ITEM, max_size=3)),
            st.lists(FEEDBACK_ITEM, max_size=3),
            JSON_TREES,
        )
    )
    def check(payload: Any) -> None:
        response = app.request("POST", "/feedback", json.dumps(payload).encode(), ADMIN)
        body = check_answer(response)
        if isinstance(payload, dict) and "feedback" in payload:
            items = payload["feedback"] if set(payload) == {"feedback"} else None
        else:
            items = [payload] if isinstance(payload, dict) else payload
        valid = isinstance(items, list) and bool(items) and all(_valid_item(i) for i in items)
        assert (response.status_code == 200) == valid, (payload, response.text[:300])
        if valid:
            assert body["accepted"] == len(items)
        else:
            assert response.status_code == 422

    check()
    still_good(app.request, known_good)


# ---- admin ---------------------------------------------------------------------------------------
URIS = st.one_of(
    st.sampled_from(["models:/nope/1", "models:/nope@champion", "", "m", "x" * 2000, "runs:/0/model"]),
    st.from_regex(r"models:/[a-z]{1,8}/[0-9]{1,3}", fullmatch=True),  # never a registered model
    VALUES,
)
NAMES = st.one_of(
    st.sampled_from([DEPLOYMENT, "new-dep", "Bad_Name", "-dash", "dash-", "a" * 64, "a" * 63, "é", "x.y"]),
    st.text(min_size=1, max_size=70),
)
SLOTS = st.one_of(
    st.sampled_from(["stable", "canary", "shadow", "staging", "blue"]), st.text(min_size=1, max_size=20)
)
ANALYSIS_KEYS = [
    "interval_s",
    "count",
    "failure_limit",
    "min_requests",
    "max_error_rate",
    "max_p95_latency_s",
]
SPEC_VALUES = st.one_of(
    VALUES,
    st.sampled_from(["x", "10,50,100", "5, 25,100", [10, 50, 100], [10.5, 50], [50, 10], [0], 5]),
)


def _maybe(keys: list[str], values: st.SearchStrategy) -> st.SearchStrategy:
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=8)), values, max_size=4)


ROLLOUT_SPECS = st.builds(
    lambda uri, base, analysis: {
        **base,
        "model_uri": uri,
        **({"analysis": analysis} if analysis is not None else {}),
    },
    URIS,
    _maybe(["strategy", "steps", "keep_previous_s", "shadow_fraction"], SPEC_VALUES)
    | st.builds(lambda s: {"strategy": s}, st.sampled_from(["canary", "blue_green", "shadow", "yolo"])),
    st.one_of(st.none(), _maybe(ANALYSIS_KEYS, VALUES), VALUES),
)


def _path(name: str, tail: str) -> str:
    return f"/admin/deployments/{quote(name, safe='')}{tail}"


BODY_ROUTES = st.sampled_from(
    [
        ("PUT", "/slots/canary"),
        ("PUT", "/weights"),
        ("POST", "/promote"),
        ("POST", "/rollback"),
        ("POST", "/rollouts"),
    ]
)
ADMIN_REQUESTS = st.one_of(
    st.builds(
        lambda route, content: (route[0], _path(DEPLOYMENT, route[1]), content),
        BODY_ROUTES,
        pathological_body(b'{"canary": 0}'),
    ),
    st.builds(
        lambda name, slot, body: ("PUT", _path(name, f"/slots/{quote(slot, safe='')}"), body),
        NAMES,
        SLOTS,
        st.one_of(st.builds(lambda uri: {"model_uri": uri}, URIS), JSON_TREES),
    ),
    st.builds(
        lambda body: ("PUT", _path(DEPLOYMENT, "/weights"), body), _maybe(["canary", "shadow"], VALUES)
    ),
    st.builds(lambda body: ("POST", _path(DEPLOYMENT, "/promote"), body), _maybe(["slot"], VALUES)),
    st.builds(lambda body: ("POST", _path(DEPLOYMENT, "/rollback"), body), _maybe(["model_uri"], URIS)),
    st.builds(
        lambda body: ("POST", _path(DEPLOYMENT, "/rollouts"), body), st.one_of(ROLLOUT_SPECS, JSON_TREES)
    ),
    st.builds(
        lambda action: ("POST", _path(DEPLOYMENT, f"/rollout/{quote(action, safe='')}"), None),
        st.one_of(st.sampled_from(["resume", "promote", "rollback"]), st.text(min_size=1, max_size=20)),
    ),
)


def snapshot(gateway: Gateway) -> dict[str, Any]:
    """Everything an admin request may change: deployments, versions per slot, weights, rollouts, events."""
    return {
        name: {
            "slots": {slot: held.model.version for slot, held in d.slots.items()},
            "canary_weight": d.canary_weight,
            "shadow_fraction": d.shadow_fraction,
            "previous": d.previous.model.version if d.previous else None,
            "rollout": d.desired.rollout,
            "events": list(d.desired.events),
        }
        for name, d in gateway.deployments.items()
    }


def settle(gateway: Gateway) -> None:
    """A started rollout of a version that cannot load fails within moments; wait for that."""
    deadline = time.monotonic() + 20
    while (rollout := gateway.deployments[DEPLOYMENT].desired.rollout) is not None and rollout[
        "state"
    ] not in (
        "succeeded",
        "rolled_back",
        "failed",
    ):
        assert time.monotonic() < deadline, rollout
        time.sleep(0.02)


def test_admin_bodies_refused_change_nothing(app: InProcess, known_good) -> None:
    @_profile(200)
    @given(ADMIN_REQUESTS)
    def check(request: tuple[str, str, Any]) -> None:
        method, path, payload = request
        before = snapshot(app.gateway)
        content = (
            payload
            if isinstance(payload, bytes)
            else b""
            if payload is None
            else json.dumps(payload).encode()
        )
        response = app.request(method, path, content, ADMIN)
        check_answer(response)
        if response.status_code >= 400:
            assert snapshot(app.gateway) == before, (path, payload, response.text[:300])
        else:
            settle(app.gateway)
        assert (
            app.gateway.deployments[DEPLOYMENT].slots["stable"].model.version
            == before[DEPLOYMENT]["slots"]["stable"]
        )
        still_good(app.request, known_good)

    check()


def test_if_match_headers_are_a_generation_or_refused_and_only_the_current_one_writes(app: InProcess) -> None:
    """Any ``If-Match`` value: 422 naming the header unless it is a generation; a generation that
    is not the deployment's is 409; neither changes anything; the current one writes."""
    generations = st.integers(0, 10**6).map(str)
    values = st.one_of(
        generations,
        generations.map(lambda g: f'"{g}"'),
        generations.map(lambda g: f'W/"{g}"'),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    )

    @_profile(150)
    @given(values, st.sampled_from([0, 1]))
    def check(value: str, use_current: int) -> None:
        current = app.gateway.deployments[DEPLOYMENT].generation
        header = str(current) if use_current else value
        before = snapshot(app.gateway)
        body = json.dumps({"shadow": 0.0}).encode()
        response = app.request("PUT", _path(DEPLOYMENT, "/weights"), body, {**ADMIN, "if-match": header})
        check_answer(response)
        digits = header.strip().removeprefix("W/").strip('"')
        if not digits.isdigit() or len(digits) > 18:
            assert response.status_code == 422 and response.json()["field"] == "if-match", response.text
        elif int(digits) != current:
            assert response.status_code == 409, response.text
            assert "nothing was changed" in response.json()["message"]
        else:
            assert response.status_code == 200, response.text
            assert app.gateway.deployments[DEPLOYMENT].generation == current + 1
            return
        assert snapshot(app.gateway) == before and app.gateway.deployments[DEPLOYMENT].generation == current

    check()


@pytest.mark.parametrize(
    ("method", "tail", "body", "field"),
    [
        ("POST", "/rollouts", {"model_uri": "models:/m/1", "steps": "x"}, "steps"),
        ("POST", "/rollouts", {"model_uri": "models:/m/1", "steps": 5}, "steps"),
        ("POST", "/rollouts", {"model_uri": "models:/m/1", "steps": [10.5, 50]}, "steps"),
        (
            "POST",
            "/rollouts",
            {"model_uri": "models:/m/1", "analysis": {"interval_s": "abc"}},
            "analysis.interval_s",
        ),
        ("POST", "/rollouts", {"model_uri": "models:/m/1", "analysis": {"count": True}}, "analysis.count"),
        ("POST", "/rollouts", {"model_uri": "models:/m/1", "analysis": []}, "analysis"),
        ("POST", "/rollouts", {"model_uri": 5}, "model_uri"),
        (
            "POST",
            "/rollouts",
            {"model_uri": "models:/m/1", "keep_previous_s": float("nan")},
            "keep_previous_s",
        ),
        ("POST", "/rollouts", {"model_uri": "models:/m/1", "strategy": []}, "strategy"),
        ("PUT", "/weights", {"canary": True}, "canary"),
        ("PUT", "/weights", {"shadow": float("nan")}, "shadow"),
        ("PUT", "/weights", {"canary": 0, "shadow": "x"}, "shadow"),
        ("PUT", "/slots/stable", {"model_uri": 5}, "model_uri"),
        ("PUT", "/slots/stable", {"model_uri": "models:/nope/1", "extra": 1}, "extra"),
        ("POST", "/promote", {"slot": []}, "slot"),
        ("POST", "/rollback", {"model_uri": 5}, "model_uri"),
    ],
)
def test_admin_type_errors_found_by_the_properties_are_422_naming_the_field(
    app: InProcess, method: str, tail: str, body: dict, field: str
) -> None:
    """The cases that answered 500 before the typed schemas; pinned so they stay 422."""
    before = snapshot(app.gateway)
    response = app.request(method, _path(DEPLOYMENT, tail), json.dumps(body).encode(), ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert snapshot(app.gateway) == before


def test_deployment_names_are_dns_labels(app: InProcess, serving_models: ServingModels) -> None:
    body = json.dumps({"model_uri": serving_models.good}).encode()
    for bad in ["Flights", "flight_delays", "-a", "a-", "a" * 64, "é", "a.b"]:
        response = app.request("PUT", _path(bad, "/slots/stable"), body, ADMIN)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["field"] == "name" and "DNS-1123" in response.json()["message"]
    assert sorted(app.gateway.deployments) == [DEPLOYMENT]
    for good in ["sandbox", "a" * 63, "replay-canary"]:
        response = app.request("PUT", _path(good, "/slots/stable"), body, ADMIN)
        assert response.status_code == 200, (good, response.text)
        assert app.request("DELETE", _path(good, ""), b"", ADMIN).status_code == 200
    assert sorted(app.gateway.deployments) == [DEPLOYMENT]


SCHEMALESS_MODEL = """
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class Constant(PythonModel):
    def predict(self, context, model_input, params=None):
        return pd.Series([0.5] * len(model_input))


mlflow.models.set_model(Constant())
"""


def test_models_without_a_signature_get_the_same_value_limits(
    app: InProcess, mlflow_server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No signature, no column types: values still have to be loggable scalars of sane range."""
    from tests.serving.conftest import _code_model

    code = tmp_path_factory.mktemp("schemaless") / "constant.py"
    code.write_text(SCHEMALESS_MODEL)
    uri = _code_model(mlflow_server.url, "serving_schemaless", code, None)
    app.run(app.gateway.deploy_slot("free", "stable", uri))
    assert app.gateway.deployments["free"].slots["stable"].model.schema is None
    path = "/deployments/free/invocations"
    try:
        ok = app.request(
            "POST", path, json.dumps({"inputs": {"a": [1, 2.5], "b": ["x", None]}}).encode(), ADMIN
        )
        assert ok.status_code == 200 and ok.json() == {"predictions": [0.5, 0.5]}, ok.text
        long_name = "n" * 1025
        for columns, field in [
            ({"a": [2**70]}, "a"),
            ({"a": [float("nan")]}, "a"),
            ({"b": ["x" * 1025]}, "b"),
            ({"b": ["\ud800"]}, "b"),
            ({long_name: [1]}, long_name[:64]),
        ]:
            response = app.request("POST", path, json.dumps({"inputs": columns}).encode(), ADMIN)
            assert response.status_code == 422, (columns, response.text[:300])
            assert response.json()["field"] == field
    finally:
        assert app.request("DELETE", _path("free", ""), b"", ADMIN).status_code == 200


# ---- a real ``conveyor serve`` process ---------------------------------------------------------------
def test_real_gateway_process_survives_hostile_bodies(
    gateway: GatewayServer, serving_models: ServingModels, fields: dict[str, str]
) -> None:
    """The same properties over TCP against the process the serving tests share (uvicorn, httptools)."""
    http = httpx.Client(base_url=gateway.url, timeout=30)

    def request(method: str, path: str, content: bytes, headers: Any) -> httpx.Response:
        return http.request(method, path, content=content, headers=headers)

    body = records_body(serving_models.rows[:2])
    known = (body, request("POST", "/invocations", body, {"content-type": "application/json"}).json())
    model = mlflow.pyfunc.load_model(serving_models.good)

    @_profile(40)
    @given(
        st.one_of(
            mutated_request(serving_models.rows[:50], fields),
            pathological_body(body).map(lambda b: (b, [], None)),
        )
    )
    def check(case: tuple[bytes, list[dict], str | None]) -> None:
        content, rows, field = case
        response = request("POST", "/invocations", content, {"content-type": "application/json"})
        answer = check_answer(response, field, model, rows)
        if response.status_code == 200:
            check_predictions(answer, len(answer["predictions"]))
        still_good(request, known)

    try:
        check()
        assert http.get("/health").json() == {"status": "ok"}
        assert gateway.proc.poll() is None, "the gateway process died"
    finally:
        http.close()


def test_unknown_paths_and_methods_answer_in_the_error_shape(app: InProcess) -> None:
    for method, path, status in [
        ("GET", "/nope", 404),
        ("PUT", "/feedback", 405),
        ("GET", "/admin/deployments/flights/weights", 405),
        ("GET", "/invocations", 405),
    ]:
        response = app.request(method, path, b"", ADMIN)
        assert response.status_code == status, (path, response.text)
        assert set(response.json()) == {"error_code", "message"}, response.text
    assert app.request("PUT", "/feedback", b"", ADMIN).headers["allow"] == "POST"
