"""Several gateway replicas on one PostgreSQL store, one rollout controller, nginx in front.

The local form of the scale-out topology (``docs/scale-out.md``): replicas are data plane only
(``conveyor serve --no-controller``), ``conveyor controller`` drives rollouts, and clients and
Airflow talk to nginx as they would to one gateway.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.clients.gateway import GatewayClient
from conveyor.local import services
from conveyor.local.gateway import GatewayServer
from conveyor.local.nginx import LoadBalancer
from conveyor.local.process import free_port, log_tail, start_group, stop_group


@dataclass
class ControllerProcess:
    """``conveyor controller`` on the store; a second one started beside it stands by."""

    root: Path
    store_url: str
    tracking_uri: str
    holder: str = "controller"
    lease_s: float = 2.0
    proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.holder}.log"

    def start(self) -> ControllerProcess:
        cmd = [
            sys.executable,
            "-m",
            "conveyor.cli",
            "controller",
            "--store",
            self.store_url,
            "--tracking-uri",
            self.tracking_uri,
            "--id",
            self.holder,
            "--lease-s",
            str(self.lease_s),
        ]
        self.proc = start_group(cmd, self.log_path, env={"MLFLOW_TRACKING_URI": self.tracking_uri})
        return self

    def _said(self) -> list[str]:
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return [line for line in text.splitlines() if f"controller {self.holder} " in line]

    def leads(self) -> bool:
        said = self._said()
        return bool(said) and said[-1].endswith(" leads")

    def stands_by(self) -> bool:
        """Up and waiting on the lease (a standby), not merely started."""
        said = self._said()
        return bool(said) and said[-1].endswith(" stands by")

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"controller exited with {self.proc.returncode}\n{log_tail(self.log_path)}")


@dataclass
class GatewayCluster:
    root: Path
    tracking_uri: str
    store_url: str
    replicas: int = 2
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    log_url: str | None = None
    port: int = field(default_factory=free_port)  # the load balancer's: the cluster's one address
    servers: list[GatewayServer] = field(default_factory=list)
    controller: ControllerProcess | None = None
    balancer: LoadBalancer | None = None

    @property
    def url(self) -> str:
        assert self.balancer is not None, "start the cluster first"
        return self.balancer.url

    @property
    def inference_log_url(self) -> str:
        """The one log every replica appends to (each writes files of its own)."""
        return self.log_url or str((self.root / "inference-log").resolve())

    @property
    def scrape_targets(self) -> list[str]:
        """Each replica's /metrics: Prometheus sums them; nginx would show one replica at a time."""
        return [f"{s.host}:{s.port}" for s in self.servers]

    def client(self, timeout: float = 120.0) -> GatewayClient:
        return GatewayClient(self.url, self.token, timeout=timeout)

    def record(self, state_file: Path) -> None:
        """Every process in ``state_file``, so ``make down`` stops the cluster."""
        for server in self.servers:
            services.record(state_file, f"gateway-{server.replica_id}", server.proc.pid, url=server.url)
        if self.controller is not None and self.controller.proc is not None:
            services.record(state_file, "gateway-controller", self.controller.proc.pid)
        if self.balancer is not None and self.balancer.proc is not None:
            services.record(state_file, "gateway-load-balancer", self.balancer.proc.pid, url=self.url)

    def replica(self, index: int) -> GatewayServer:
        return GatewayServer(
            root=self.root / f"replica-{index}",
            tracking_uri=self.tracking_uri,
            token=self.token,
            store_url=self.store_url,
            replica_id=f"replica-{index}",
            controller=False,
            log_url=self.inference_log_url,
        )

    def start(self) -> GatewayCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.servers = [self.replica(i).start() for i in range(self.replicas)]
            self.controller = ControllerProcess(self.root, self.store_url, self.tracking_uri).start()
            upstreams = [f"{s.host}:{s.port}" for s in self.servers]
            self.balancer = LoadBalancer(self.root / "nginx", upstreams, port=self.port).start()
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()
        if self.controller is not None:
            self.controller.stop()
        for server in self.servers:
            server.stop()

    def __enter__(self) -> GatewayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
