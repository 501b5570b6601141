"""A real ``mlflow server`` (sqlite or PostgreSQL backend, proxied local artifact store) on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.local.process import (
    ensure_port_free,
    free_port,
    log_tail,
    start_group,
    stop_group,
    wait_http,
)


@dataclass
class MlflowServer:
    """One tracking + registry server whose state lives under ``root``.

    Artifacts are served through the server (``--serve-artifacts``), so clients only need the
    tracking URI, exactly as with a remote deployment.

    ``backend_uri`` is the tracking and registry database; by default a sqlite file under
    ``root``. Pass a PostgreSQL URL (``LocalPostgres.sqlalchemy_url``) for the multi-host layout:
    the server migrates an empty database at start, and with proxied artifacts no worker or
    replica shares a folder with it.
    """

    root: Path
    backend_uri: str | None = None
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def backend_store_uri(self) -> str:
        return self.backend_uri or f"sqlite:///{(self.root / 'mlflow.db').resolve()}"

    @property
    def artifacts_destination(self) -> Path:
        """Where the server stores every artifact clients upload through it."""
        return (self.root / "artifacts").resolve()

    @property
    def log_path(self) -> Path:
        return self.root / "mlflow-server.log"

    def start(self, timeout: float = 90.0) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            ensure_port_free(self.host, self.port)
        except RuntimeError as exc:
            raise RuntimeError(f"mlflow server did not start: {exc}") from exc
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.backend_store_uri,
            "--artifacts-destination",
            str(self.artifacts_destination),
            "--serve-artifacts",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        # The job runner (huey workers for GenAI evaluation jobs and trace roll-ups) is four more
        # processes per server that tracking and the registry never use.
        self.proc = start_group(cmd, self.log_path, env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        try:
            wait_http(f"{self.url}/health", timeout=timeout, proc=self.proc)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"mlflow server did not start: {exc}\n{log_tail(self.log_path)}") from exc
        return self

    def stop(self) -> None:
        if self.proc is not None:
            # A server that has not exited after 5 s is killed: sqlite and PostgreSQL commits are atomic.
            stop_group(self.proc, timeout=5)
            self.proc = None

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
