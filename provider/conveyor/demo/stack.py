"""The demo's services: MLflow, PostgreSQL + Airflow, the gateway, Prometheus and a Pushgateway.

Each starts through the same ``conveyor.local`` class the tests use, on its usual port when that
port is free (bookmarks and the printed URLs stay stable between demos), under ``var/demo``,
and is recorded in ``var/services.json`` so ``make down`` stops it after the demo has exited.
Prometheus and the Pushgateway are optional: without the Debian packages the demo still runs,
and says that it skipped them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.local import services
from conveyor.local.airflow import REPO_ROOT, LocalAirflow, connection_env
from conveyor.local.cluster import GatewayCluster
from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer
from conveyor.local.postgres import LocalPostgres
from conveyor.local.process import ensure_port_free, free_port

DEFAULT_PORTS = {"mlflow": 5000, "airflow": 8080, "gateway": 8000, "prometheus": 9090, "pushgateway": 9091}
DEPLOYMENT = "flights"


def port_or_free(preferred: int) -> int:
    """``preferred`` when nothing listens there, else any free port (the demo never fights for one)."""
    try:
        ensure_port_free("127.0.0.1", preferred)
    except RuntimeError:
        return free_port()
    return preferred


@dataclass
class DemoStack:
    """The started services; ``urls`` is what the summary prints."""

    var: Path
    mlflow: MlflowServer
    airflow: LocalAirflow
    gateway: GatewayServer | GatewayCluster
    prometheus_url: str | None = None
    pushgateway_url: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def state_file(self) -> Path:
        return self.var / "services.json"

    @property
    def urls(self) -> dict[str, str]:
        urls = {
            "Airflow": f"{self.airflow.url}   (login {self.airflow.username} / {self.airflow.password})",
            "MLflow": self.mlflow.url,
            "Gateway metrics": f"{self.gateway.url}/metrics",
            "Gateway status": f"conveyor status --gateway {self.gateway.url} "
            f"--token $(cat {self.gateway.root / 'token'})",
        }
        if self.prometheus_url:
            urls["Prometheus"] = self.prometheus_url
        if self.pushgateway_url:
            urls["Pushgateway"] = self.pushgateway_url
        return urls


def stop_previous(var: Path) -> list[str]:
    """Stop what an earlier demo (or ``make airflow``) left running: the demo starts from a clean state."""
    return services.stop_all(var / "services.json")


def start_stack(
    var: Path,
    ports: dict[str, int] | None = None,
    progress=print,
    retrain_partitions: str = "",
    executor: str = "local",
    gateway_replicas: int = 1,
) -> DemoStack:
    """Start everything under ``var/demo`` (wiped first: a demo always starts from an empty registry);
    ``executor`` is ``LocalAirflow``'s (``celery``: Redis and Celery workers run the tasks);
    ``gateway_replicas`` above 1 serves through nginx in front of that many replicas on a
    PostgreSQL store, driven by one ``conveyor controller``."""
    ports = {**DEFAULT_PORTS, **(ports or {})}
    var = var.resolve()
    state_file = var / "services.json"
    root = var / "demo"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)

    mlflow = MlflowServer(root=root / "mlflow", port=port_or_free(ports["mlflow"])).start()
    services.record(state_file, "mlflow", mlflow.proc.pid, url=mlflow.url)
    progress(f"MLflow      {mlflow.url}")

    gateway = _start_gateway(root, state_file, mlflow.url, port_or_free(ports["gateway"]), gateway_replicas)
    token_file = gateway.root / "token"
    token_file.write_text(gateway.token)
    token_file.chmod(0o600)
    shape = "" if gateway_replicas == 1 else f"nginx in front of {gateway_replicas} replicas + controller; "
    progress(f"gateway     {gateway.url} ({shape}no model yet; inference log {gateway.inference_log_url})")

    stack_notes: list[str] = []
    pushgateway_url = prometheus_url = None
    try:
        pushgateway_url, prometheus_url = _start_prometheus(root, state_file, gateway, ports)
        progress(f"Prometheus  {prometheus_url} scraping the gateway and the Pushgateway {pushgateway_url}")
    except RuntimeError as exc:
        stack_notes.append(f"Prometheus skipped: {exc}")
        progress(f"Prometheus skipped: {exc}")

    airflow = LocalAirflow(
        home=root / "airflow",
        dags_folder=REPO_ROOT / "dags",
        port=port_or_free(ports["airflow"]),
        extra_env=airflow_env(mlflow.url, gateway, pushgateway_url, retrain_partitions),
        state_file=state_file,
        executor=executor,
    )
    progress(f"Airflow     starting {airflow.describe()}")
    airflow.start()
    progress(f"Airflow     {airflow.url} (login {airflow.username} / {airflow.password})")
    return DemoStack(var, mlflow, airflow, gateway, prometheus_url, pushgateway_url, stack_notes)


def _start_gateway(
    root: Path, state_file: Path, tracking_uri: str, port: int, replicas: int
) -> GatewayServer | GatewayCluster:
    if replicas == 1:
        gateway = GatewayServer(root=root / "gateway", tracking_uri=tracking_uri, port=port).start()
        services.record(state_file, "gateway", gateway.proc.pid, url=gateway.url)
        return gateway
    store = LocalPostgres(root / "gateway-store").start()
    services.record(state_file, "gateway-store", store.pid, group=False, stop_signal="SIGINT")
    store.create_database("gateway_store")
    cluster = GatewayCluster(
        root=root / "gateway",
        tracking_uri=tracking_uri,
        store_url=store.sqlalchemy_url("gateway_store"),
        replicas=replicas,
        port=port,
    ).start()
    cluster.record(state_file)
    return cluster


def airflow_env(
    mlflow_url: str,
    gateway: GatewayServer | GatewayCluster,
    pushgateway_url: str | None,
    retrain_partitions: str = "",
) -> dict[str, str]:
    """Connections and Variables the three DAGs read: MLflow, the Kedro project, the gateway (its
    admin token as the password), the gateway's inference log, the Pushgateway, and the months
    ``ml_monitor`` asks ``ml_ci`` to retrain on (the replayed traffic is from 2013, not from now)."""
    env = connection_env(mlflow_url, gateway_url=gateway.url, gateway_token=gateway.token)
    env["AIRFLOW_VAR_CONVEYOR_INFERENCE_LOG_URL"] = gateway.inference_log_url
    if pushgateway_url:
        env["AIRFLOW_VAR_CONVEYOR_PUSHGATEWAY_URL"] = pushgateway_url
    if retrain_partitions:
        env["AIRFLOW_VAR_CONVEYOR_RETRAIN_PARTITIONS"] = retrain_partitions
    return env


def _start_prometheus(
    root: Path, state_file: Path, gateway: GatewayServer | GatewayCluster, ports: dict[str, int]
) -> tuple[str, str]:
    from conveyor.local.prometheus import Prometheus, Pushgateway

    push = Pushgateway(root=root / "pushgateway", port=port_or_free(ports["pushgateway"])).start()
    services.record(state_file, "pushgateway", push.proc.pid, url=push.url)
    prom = Prometheus(
        root=root / "prometheus",
        targets={"conveyor-gateway": gateway.scrape_targets},
        pushgateway=f"{push.host}:{push.port}",
        scrape_interval="5s",
        port=port_or_free(ports["prometheus"]),
    ).start()
    services.record(state_file, "prometheus", prom.proc.pid, url=prom.url)
    return push.url, prom.url
