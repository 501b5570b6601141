"""The server extension in a real Jupyter server (pytest-jupyter), against real Airflow and MLflow."""

from __future__ import annotations

import inspect
import json

import pytest
from tornado.httpclient import HTTPClientError

from conveyor.local.process import free_port
from conveyor_jupyter.handlers import HANDLERS

pytestmark = pytest.mark.integration


@pytest.fixture
def fetch(jp_fetch, jp_asyncio_loop):
    """``jp_fetch`` driven to completion, so tests stay synchronous (no second event-loop plugin)."""

    def call(*parts: str, method: str = "GET", body: dict | None = None, **kwargs):
        coro = jp_fetch(
            "conveyor",
            *parts,
            method=method,
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            **kwargs,
        )
        return jp_asyncio_loop.run_until_complete(coro)

    return call


def error_of(exc: pytest.ExceptionInfo) -> tuple[int, dict]:
    return exc.value.code, json.loads(exc.value.response.body)


def test_every_handler_verb_requires_authentication():
    """The template's check_auth, as a test: a verb without @authenticated would serve anyone."""
    verbs = ("get", "post", "put", "patch", "delete")
    missing = []
    for _pattern, handler in HANDLERS:
        for verb in verbs:
            method = handler.__dict__.get(verb)
            if method is None:
                continue
            source = inspect.getsource(method)
            if "@web.authenticated" not in source and "@tornado.web.authenticated" not in source:
                missing.append(f"{handler.__name__}.{verb}")
    assert missing == []
    assert sum(1 for _, h in HANDLERS for v in verbs if v in h.__dict__) >= 14


def test_requests_without_a_token_are_refused(jp_fetch, jp_asyncio_loop):
    with pytest.raises(HTTPClientError) as err:
        jp_asyncio_loop.run_until_complete(jp_fetch("conveyor", "dags", headers={"Authorization": ""}))
    assert err.value.code == 403


def test_config_shows_where_things_are_but_never_the_password(fetch, conveyor_env):
    data = json.loads(fetch("config").body)
    assert data["airflow_url"] == conveyor_env["CONVEYOR_AIRFLOW_URL"]
    assert data["airflow_version"].startswith("3.")
    assert set(data) == {
        "airflow_url",
        "username",
        "mlflow_uri",
        "kedro_project",
        "model_name",
        "airflow_version",
    }


def test_dag_params_become_form_specs(fetch):
    dags = {d["dag_id"] for d in json.loads(fetch("dags").body)["dags"]}
    assert {"conveyor_ui_params", "conveyor_ui_approval"} <= dags
    params = json.loads(fetch("dags", "conveyor_ui_params").body)["params"]
    assert params["rows"]["default"] == 3
    assert params["rows"]["schema"]["type"] == "integer"
    assert params["mode"]["schema"]["enum"] == ["fast", "slow"]
    assert params["rows"]["description"] == "rows to produce"


def test_trigger_then_poll_the_run_to_success_and_read_a_log(fetch, jupyter_airflow_client):
    created = fetch("dags", "conveyor_ui_params", "runs", method="POST", body={"conf": {"rows": 4}})
    assert created.code == 201
    run = json.loads(created.body)
    assert run["conf"] == {"rows": 4}
    jupyter_airflow_client.wait_for_run("conveyor_ui_params", run["run_id"], timeout=180)
    detail = json.loads(fetch("runs", "conveyor_ui_params", run["run_id"]).body)
    assert detail["state"] == "success"
    assert [t["task_id"] for t in detail["tasks"]] == ["prepare", "report"]
    log = json.loads(fetch("runs", "conveyor_ui_params", run["run_id"], "tasks", "report", "logs").body)
    assert "CONVEYOR-REPORT rows=4" in log["text"]
    recent = json.loads(fetch("runs", params={"dag_id": "conveyor_ui_params"}).body)["runs"]
    assert run["run_id"] in [r["run_id"] for r in recent]


def test_bad_conf_is_refused_with_the_field_and_nothing_runs(fetch, jupyter_airflow_client):
    before = len(jupyter_airflow_client.list_dag_runs("conveyor_ui_params", limit=200))
    with pytest.raises(HTTPClientError) as err:
        fetch("dags", "conveyor_ui_params", "runs", method="POST", body={"conf": {"rows": -1}})
    status, body = error_of(err)
    assert status == 400 and "'rows'" in body["message"]
    with pytest.raises(HTTPClientError) as err:
        fetch("dags", "conveyor_ui_params", "runs", method="POST", body={"conf": ["not", "a", "dict"]})
    assert error_of(err)[0] == 400
    assert len(jupyter_airflow_client.list_dag_runs("conveyor_ui_params", limit=200)) == before


def test_unknown_dag_is_404_with_airflows_reason(fetch):
    with pytest.raises(HTTPClientError) as err:
        fetch("dags", "no_such_dag")
    status, body = error_of(err)
    assert status == 404 and "no_such_dag" in body["message"]


def test_approve_through_the_server(fetch, jupyter_airflow_client):
    run = json.loads(fetch("dags", "conveyor_ui_approval", "runs", method="POST", body={}).body)
    run_seg = run["run_id"]
    with pytest.raises(HTTPClientError) as err:
        fetch("runs", "conveyor_ui_approval", run_seg, "approve", method="POST", body={"task_id": "build"})
    assert error_of(err)[0] == 400
    import time

    deadline = time.monotonic() + 180
    while not json.loads(fetch("runs", "conveyor_ui_approval", run_seg).body)["approvals"]:
        assert time.monotonic() < deadline, "approval never became pending"
        time.sleep(1)
    pending = json.loads(fetch("approvals").body)["approvals"]
    assert {"dag_id": "conveyor_ui_approval", "run_id": run["run_id"]}.items() <= next(
        p for p in pending if p["run_id"] == run["run_id"]
    ).items()
    # As a person would, answer after reading (AirflowClient.wait_for_approval: Airflow 3.3 race).
    jupyter_airflow_client.wait_for_approval("conveyor_ui_approval", run["run_id"], timeout=60)
    answer = json.loads(
        fetch("runs", "conveyor_ui_approval", run_seg, "approve", method="POST", body={}).body
    )
    assert answer == {"task_id": "approve_release", "chosen_options": ["Approve"], "approved": True}
    final = jupyter_airflow_client.wait_for_run("conveyor_ui_approval", run["run_id"], timeout=180)
    states = {t["task_id"]: t["state"] for t in jupyter_airflow_client.task_instances(*run_ref(run))}
    assert final["state"] == "success", states


def run_ref(run: dict) -> tuple[str, str]:
    return run["dag_id"], run["run_id"]


def test_unknown_model_is_404_naming_it(fetch):
    with pytest.raises(HTTPClientError) as err:
        fetch("models", "no_such_model")
    status, body = error_of(err)
    assert status == 404 and "no_such_model" in body["message"]


class TestAirflowUnreachable:
    @pytest.fixture
    def jp_server_config(self, conveyor_env, monkeypatch):
        self.url = f"http://127.0.0.1:{free_port()}"
        monkeypatch.setenv("CONVEYOR_AIRFLOW_URL", self.url)
        return {"ServerApp": {"jpserver_extensions": {"conveyor_jupyter": True}}}

    def test_503_names_the_airflow_url(self, fetch):
        with pytest.raises(HTTPClientError) as err:
            fetch("dags")
        status, body = error_of(err)
        assert status == 503
        assert self.url in body["message"] and body["reason"] == "airflow_unreachable"


class TestLoginRejected:
    @pytest.fixture
    def jp_server_config(self, conveyor_env, monkeypatch):
        return {
            "ServerApp": {"jpserver_extensions": {"conveyor_jupyter": True}},
            "ConveyorExtension": {"airflow_password": "definitely-wrong"},
        }

    def test_502_says_the_login_was_refused(self, fetch):
        with pytest.raises(HTTPClientError) as err:
            fetch("runs")
        status, body = error_of(err)
        assert status == 502 and body["reason"] == "airflow_login_rejected"
        assert "refused the login" in body["message"] and "definitely-wrong" not in body["message"]


class TestMlflowUnreachable:
    @pytest.fixture
    def jp_server_config(self, conveyor_env, monkeypatch):
        self.url = f"http://127.0.0.1:{free_port()}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", self.url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        return {"ServerApp": {"jpserver_extensions": {"conveyor_jupyter": True}}}

    def test_502_names_the_mlflow_url(self, fetch):
        with pytest.raises(HTTPClientError) as err:
            fetch("models", "flight_delays")
        status, body = error_of(err)
        assert status == 502 and body["reason"] == "mlflow"
        assert self.url in body["message"] and "unreachable" in body["message"]
