"""Connections → hooks: URIs, credentials and the error a user sees when MLflow is down."""

from __future__ import annotations

import json
import os

import pytest

from conveyor.hooks.kedro import KedroHook
from conveyor.hooks.mlflow import MlflowHook, MlflowUnreachableError
from conveyor.local.process import free_port


def _conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, value: dict | str) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", value if isinstance(value, str) else json.dumps(value)
    )


@pytest.mark.parametrize(
    ("connection", "uri"),
    [
        (
            {"conn_type": "conveyor_mlflow", "host": "http://mlflow.internal:5000/"},
            "http://mlflow.internal:5000",
        ),
        (
            {"conn_type": "conveyor_mlflow", "host": "https://mlflow.example.com", "port": 8443},
            "https://mlflow.example.com:8443",
        ),
        ("conveyor-mlflow://mlflow.internal:5000", "http://mlflow.internal:5000"),
        ({"conn_type": "conveyor_mlflow", "host": "sqlite:////tmp/mlflow.db"}, "sqlite:////tmp/mlflow.db"),
    ],
)
def test_tracking_uri_from_json_or_uri_connections(
    monkeypatch: pytest.MonkeyPatch, connection, uri: str
) -> None:
    _conn(monkeypatch, "mlflow_x", connection)
    hook = MlflowHook("mlflow_x")
    assert hook.tracking_uri == uri and hook.registry_uri == uri


def test_credentials_and_extras_reach_the_client(monkeypatch: pytest.MonkeyPatch, mlflow_uri: str) -> None:
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    _conn(
        monkeypatch,
        "mlflow_auth",
        {
            "conn_type": "conveyor_mlflow",
            "host": mlflow_uri,
            "login": "ci-bot",
            "password": "s3cret",
            "extra": {"token": "tok", "ui_url": "https://mlflow.example.com/", "registry_uri": mlflow_uri},
        },
    )
    hook = MlflowHook("mlflow_auth")
    client = hook.get_conn()
    assert client.tracking_uri == mlflow_uri
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "ci-bot"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cret"
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "tok"
    assert hook.model_version_url("m", "3") == "https://mlflow.example.com/#/models/m/versions/3"
    assert client.search_registered_models(max_results=1) is not None  # the client really talks to it


def test_unreachable_server_error_names_the_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    _conn(
        monkeypatch,
        "mlflow_down",
        {"conn_type": "conveyor_mlflow", "host": uri, "extra": {"connect_timeout": 2}},
    )
    hook = MlflowHook("mlflow_down")
    with pytest.raises(
        MlflowUnreachableError, match=f"MLflow server at {uri} \\(connection 'mlflow_down'\\) is unreachable"
    ):
        hook.get_conn()
    ok, message = hook.test_connection()
    assert ok is False and uri in message


def test_connection_without_host_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _conn(monkeypatch, "mlflow_empty", {"conn_type": "conveyor_mlflow"})
    with pytest.raises(ValueError, match="connection 'mlflow_empty' has no host"):
        MlflowHook("mlflow_empty")


def test_kedro_hook_reads_the_project(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.kedro]\n")
    extra = {
        "project_path": str(tmp_path),
        "env": "prod",
        "conf_source": "/etc/conf",
        "python_bin": "/venv/bin/python",
    }
    _conn(monkeypatch, "kedro_x", {"conn_type": "conveyor_kedro", "extra": extra})
    project = KedroHook("kedro_x").get_conn()
    assert (project.project_path, project.env, project.conf_source, project.python_bin) == (
        tmp_path,
        "prod",
        "/etc/conf",
        "/venv/bin/python",
    )


@pytest.mark.parametrize(
    ("extra", "error"),
    [({}, "has no 'project_path'"), ({"project_path": "/nonexistent"}, "not a Kedro project")],
)
def test_kedro_hook_rejects_bad_projects(monkeypatch: pytest.MonkeyPatch, extra: dict, error: str) -> None:
    _conn(monkeypatch, "kedro_bad", {"conn_type": "conveyor_kedro", "extra": extra})
    hook = KedroHook("kedro_bad")
    with pytest.raises((ValueError, FileNotFoundError), match=error):
        hook.get_conn()
    assert hook.test_connection()[0] is False
