"""A real gateway process (``conveyor serve``) on 127.0.0.1, for the demo, tests and benchmarks."""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.clients.gateway import GatewayClient
from conveyor.local.process import ensure_port_free, free_port, log_tail, start_group, stop_group, wait_http


@dataclass
class GatewayServer:
    """One gateway whose log (and, with ``log_url`` unset, inference log) lives under ``root``.

    ``deployments`` (name -> model URI) are loaded into their stable slots at startup; the
    server counts as started when it answers and every one of them is serving. The gateway loads
    them *before* it listens, so its first answer means startup is over: a deployment missing
    then failed to load, and ``start`` raises at once with the gateway's log (which holds the load
    error) instead of waiting out its timeout for a version that will never load.
    """

    root: Path
    tracking_uri: str
    deployments: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    log_url: str | None = None
    # The state store: by default a SQLite file under ``root``, so a restart resumes it.
    store_url: str | None = None
    replica_id: str | None = None
    controller: bool = True
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "gateway.log"

    @property
    def inference_log_url(self) -> str:
        return self.log_url or str((self.root / "inference-log").resolve())

    @property
    def scrape_targets(self) -> list[str]:
        """Where Prometheus reads this gateway's /metrics."""
        return [f"{self.host}:{self.port}"]

    @property
    def store(self) -> str:
        return self.store_url or f"sqlite:///{(self.root / 'gateway-state.db').resolve()}"

    def client(self, timeout: float = 120.0) -> GatewayClient:
        return GatewayClient(self.url, self.token, timeout=timeout)

    def start(self, timeout: float = 120.0) -> GatewayServer:
        self.root.mkdir(parents=True, exist_ok=True)
        ensure_port_free(self.host, self.port)
        cmd = [
            sys.executable,
            "-m",
            "conveyor.cli",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--tracking-uri",
            self.tracking_uri,
            "--log-url",
            self.inference_log_url,
            "--store",
            self.store,
            *(["--replica-id", self.replica_id] if self.replica_id else []),
            *([] if self.controller else ["--no-controller"]),
            *[f"--deploy={name}={uri}" for name, uri in self.deployments.items()],
            *self.extra_args,
        ]
        env = {"CONVEYOR_GATEWAY_TOKEN": self.token, "MLFLOW_TRACKING_URI": self.tracking_uri}
        self.proc = start_group(cmd, self.log_path, env=env)
        try:
            wait_http(f"{self.url}/health", timeout=timeout, proc=self.proc)
            self._check_loaded()
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"gateway did not start: {exc}\n{log_tail(self.log_path)}") from exc
        return self

    def _check_loaded(self) -> None:
        if not self.deployments:
            return
        with self.client(timeout=30.0) as client:
            missing = [name for name in self.deployments if not client.exists(name)]
        if missing:
            raise RuntimeError(f"deployment(s) {', '.join(missing)} failed to load at startup")

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
