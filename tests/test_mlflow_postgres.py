"""MLflow for several hosts: ``mlflow server`` on PostgreSQL with proxied artifacts.

Clients run as separate processes whose working directory, HOME and TMPDIR are fresh empty
folders, so they provably share no folder with the server: runs, params, metrics, the registry
and the alias live in PostgreSQL, artifact bytes under the server's ``--artifacts-destination``,
and everything reaches them over HTTP only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.local.mlflow_server import MlflowServer
from conveyor.local.postgres import LocalPostgres

pytestmark = pytest.mark.integration

DATABASE = "mlflow"

LOG_AND_REGISTER = """
import json, sys
import mlflow
from mlflow import MlflowClient

name, payload = sys.argv[1], sys.argv[2]


class AddOffset(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["x"] + 10.0


mlflow.set_experiment("multi-host")
with mlflow.start_run() as run:
    mlflow.log_param("offset", 10)
    mlflow.log_metric("score", 0.875)
    mlflow.log_text(payload, "notes/payload.txt")
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=AddOffset(),
        registered_model_name=name,
        pip_requirements=["mlflow"],  # declared: no requirement inference
    )
version = str(info.registered_model_version)
MlflowClient().set_registered_model_alias(name, "champion", version)
print(json.dumps({"run_id": run.info.run_id, "artifact_uri": run.info.artifact_uri, "version": version}))
"""

LOAD_AND_PREDICT = """
import json, sys
import mlflow
import pandas as pd

model = mlflow.pyfunc.load_model(f"models:/{sys.argv[1]}@champion")
print(json.dumps([float(v) for v in model.predict(pd.DataFrame({"x": [1.0, 2.5]}))]))
"""


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[LocalPostgres]:
    server = LocalPostgres(tmp_path / "pg").start()
    try:
        server.create_database(DATABASE)
        yield server
    finally:
        server.stop()


@pytest.fixture
def mlflow_pg(tmp_path: Path, postgres: LocalPostgres) -> Iterator[MlflowServer]:
    with MlflowServer(root=tmp_path / "mlflow", backend_uri=postgres.sqlalchemy_url(DATABASE)) as server:
        yield server


def _client(script: str, args: list[str], home: Path, tracking_uri: str) -> str:
    """Run ``script`` in a process that shares no folder with the server: cwd, HOME and TMPDIR
    are ``home`` (fresh and empty), the environment names nothing but the tracking URI."""
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(home),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"client failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


def _files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def test_runs_registry_and_artifacts_need_no_shared_folder(
    tmp_path: Path, postgres: LocalPostgres, mlflow_pg: MlflowServer
) -> None:
    import psycopg2

    name = f"pg_model_{uuid.uuid4().hex[:8]}"
    payload = f"proxied artifact {uuid.uuid4().hex}"
    writer, reader = tmp_path / "client-writer", tmp_path / "client-reader"

    logged = json.loads(_client(LOG_AND_REGISTER, [name, payload], writer, mlflow_pg.url))
    predictions = json.loads(_client(LOAD_AND_PREDICT, [name], reader, mlflow_pg.url))
    assert predictions == [11.0, 12.5]

    # Proxied: the run's artifact URI points at the server, and the bytes sit in its destination.
    assert logged["artifact_uri"].startswith("mlflow-artifacts:")
    stored = [p for p in _files(mlflow_pg.artifacts_destination) if p.name == "payload.txt"]
    assert len(stored) == 1 and stored[0].read_text() == payload
    assert logged["run_id"] in stored[0].parts
    assert any(p.name == "MLmodel" for p in _files(mlflow_pg.artifacts_destination))
    # The writer's folders hold nothing at all afterwards (no mlruns/, no artifact copy); the
    # reader holds only the model it downloaded from the server, as any loader does.
    assert list(writer.rglob("*")) == []
    assert not any(p.name in ("mlruns", "mlartifacts") for p in reader.rglob("*"))
    served = {p.name: p.read_bytes() for p in _files(mlflow_pg.artifacts_destination) if "models" in p.parts}
    downloaded = {p.name: p.read_bytes() for p in _files(reader) if p.name in served}
    assert downloaded and all(served[name] == data for name, data in downloaded.items())
    assert not (mlflow_pg.root / "mlflow.db").exists()  # the sqlite default was not used

    conn = psycopg2.connect(host=str(postgres.socket_dir), user="postgres", dbname=DATABASE)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM registered_models WHERE name = %s", (name,))
            assert cur.fetchall() == [(name,)]
            cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (name,))
            assert cur.fetchall() == [("champion", int(logged["version"]))]
            cur.execute("SELECT key, value FROM params WHERE run_uuid = %s", (logged["run_id"],))
            assert cur.fetchall() == [("offset", "10")]
            cur.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = %s", (logged["run_id"],))
            assert cur.fetchall() == [("score", 0.875)]
    finally:
        conn.close()
