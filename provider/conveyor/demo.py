"""``make demo`` / ``python -m conveyor.demo``: a local MLflow server and a first trained model.

One function per step so later steps of the loop (Airflow, gateway, drift) slot in beside
these. The MLflow server keeps running after the demo exits (its pid is in ``var/``) so the
printed URLs stay live; ``python -m conveyor.demo --down`` stops it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conveyor.local.mlflow_server import MlflowServer
from conveyor.local.process import free_port

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var"
KEDRO_PROJECT = ROOT / "kedro_project"
DEFAULT_PORT = 5000
MODEL_NAME = "flight_delays"


def _pid_file(var: Path) -> Path:
    return var / "mlflow" / "server.pid"


def _url_file(var: Path) -> Path:
    return var / "mlflow" / "server.url"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_mlflow(var: Path = VAR, port: int = DEFAULT_PORT) -> str:
    """The demo's MLflow server: reuse the one a previous demo left running, else start one."""
    if _url_file(var).exists():
        url = _url_file(var).read_text().strip()
        if _answers(url):
            print(f"MLflow server already running at {url}")
            return url
    try:
        server = MlflowServer(root=var / "mlflow", port=port).start()
    except RuntimeError as exc:
        if "already in use" not in str(exc):
            raise
        server = MlflowServer(root=var / "mlflow", port=free_port()).start()
        print(f"port {port} is taken; MLflow runs on {server.port} instead")
    _pid_file(var).write_text(str(server.proc.pid))
    _url_file(var).write_text(server.url)
    print(f"MLflow server started at {server.url} (state in {var / 'mlflow'})")
    return server.url


def run_pipelines(tracking_uri: str, partition: str) -> None:
    """``kedro run`` exactly as a data scientist would, tracking to the demo server."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
    }
    cmd = [sys.executable, "-m", "kedro", "run", "--params", f"partition={partition}"]
    print(f"Running the Kedro pipelines on {partition}: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, cwd=KEDRO_PROJECT, env=env, check=True)


def show_model(tracking_uri: str, name: str = MODEL_NAME, alias: str = "challenger") -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = client.get_model_version_by_alias(name, alias)
    run = client.get_run(version.run_id)
    metrics = ", ".join(
        f"{k} {run.data.metrics[k]:.3f}" for k in ("roc_auc", "accuracy", "f1") if k in run.data.metrics
    )
    run_url = f"{tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    print(
        "\n".join(
            [
                "",
                f"MLflow UI:          {tracking_uri}",
                f"Run:                {run_url}",
                f"Registered version: {name} v{version.version} (models:/{name}@{alias})",
                f"                    {tracking_uri}/#/models/{name}/versions/{version.version}",
                f"Held-out metrics:   {metrics}",
                f"Partition:          {version.tags.get('conveyor.partition')}",
                "Stop the server with: make down",
            ]
        )
    )


def stop_mlflow(var: Path = VAR) -> None:
    pid_file = _pid_file(var)
    if not pid_file.exists():
        print("no demo MLflow server recorded")
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(60):
            os.killpg(pid, 0)
            time.sleep(0.25)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink()
    _url_file(var).unlink(missing_ok=True)
    print(f"stopped the demo MLflow server (pid {pid})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conveyor.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--down", action="store_true", help="stop the MLflow server a demo left running")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="MLflow port (default 5000, if free)")
    parser.add_argument("--partition", default="2013-01", help="month(s) to train on (default 2013-01)")
    args = parser.parse_args(argv)
    if args.down:
        stop_mlflow()
        return 0
    url = start_mlflow(port=args.port)
    run_pipelines(url, args.partition)
    show_model(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
