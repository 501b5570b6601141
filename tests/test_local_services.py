"""The local-service helpers that tests and ``make demo`` share."""

from __future__ import annotations

import mlflow
import pytest

from conveyor.local.mlflow_server import MlflowServer
from conveyor.local.process import free_port, wait_http


def test_mlflow_server_tracks_and_serves_artifacts(mlflow_uri: str) -> None:
    with mlflow.start_run() as run:
        mlflow.log_metric("auc", 0.75)
        mlflow.log_text("hello", "notes/hello.txt")
    fetched = mlflow.get_run(run.info.run_id)
    assert fetched.data.metrics["auc"] == 0.75
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="notes/hello.txt")
    with open(path) as fh:
        assert fh.read() == "hello"


def test_wait_http_names_the_url_when_nothing_answers() -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
        wait_http(f"http://127.0.0.1:{port}/health", timeout=1)


def test_mlflow_server_that_cannot_start_says_why(tmp_path) -> None:
    with MlflowServer(root=tmp_path / "a") as first:
        clash = MlflowServer(root=tmp_path / "b", port=first.port)
        with pytest.raises(RuntimeError, match="mlflow server did not start"):
            clash.start(timeout=20)
