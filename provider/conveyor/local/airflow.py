"""A real local Airflow: api-server, scheduler, dag-processor and triggerer on PostgreSQL.

The same class serves ``make airflow`` (exploration under ``var/airflow``), ``make demo`` and the
test fixtures, so the tests drive exactly what a user runs. Each component runs in its own
process group: the scheduler forks LocalExecutor workers and task supervisors that would
otherwise survive a plain SIGTERM of their parent.

``executor="celery"`` runs the tasks on Celery workers instead (``make airflow EXECUTOR=celery``):
Debian's ``redis-server`` as the broker, Celery's results in the same PostgreSQL, and several
named workers on this host, each in its own process group, as separate hosts would run them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.core import atomic
from conveyor.local import services
from conveyor.local.postgres import LocalPostgres
from conveyor.local.process import ensure_port_free, free_port, log_tail, start_group, stop_group, wait_http
from conveyor.local.redis import LocalRedis

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
# Each Celery worker finds its own name here; ``worker_hostname`` reports it to Airflow.
WORKER_NAME_ENV = "CONVEYOR_CELERY_WORKER"
REPO_ROOT = Path(__file__).resolve().parents[3]
# The repository's Kedro projects, each run by its DAGs through its own ``conveyor_kedro``
# connection (``airflow.connections.kedro`` of its conveyor.yml): dags/ml_*.py run the demo
# (``kedro_default``), dags/bike_rentals.py the second example (``kedro_bike_rentals``).
KEDRO_PROJECT = REPO_ROOT / "kedro_project"
BIKE_RENTALS_PROJECT = REPO_ROOT / "examples" / "bike_rentals"
BIKE_RENTALS_CONN_ID = "kedro_bike_rentals"


def connection_env(
    mlflow_url: str,
    kedro_project: Path = KEDRO_PROJECT,
    gateway_url: str | None = None,
    gateway_token: str | None = None,
    kedro_conf_source: Path | None = None,
    bike_rentals_conf_source: Path | None = None,
) -> dict[str, str]:
    """The Conveyor connections (``docs/contracts.md``) as ``AIRFLOW_CONN_*`` variables for ``extra_env``.

    Both Kedro projects of ``dags/`` get their connection: ``kedro_default`` (``kedro_project``)
    and ``kedro_bike_rentals`` (``examples/bike_rentals``). ``kedro_conf_source`` and
    ``bike_rentals_conf_source`` point their runs at another configuration folder (e.g. one whose
    ``data_root`` keeps a test session's files out of the project, ``private_kedro_conf``);
    ``gateway_token`` is the gateway's admin token (the connection's password).
    """
    conns: dict[str, dict] = {
        "MLFLOW_DEFAULT": {"conn_type": "conveyor_mlflow", "host": mlflow_url},
        "KEDRO_DEFAULT": _kedro_connection(kedro_project, kedro_conf_source),
        BIKE_RENTALS_CONN_ID.upper(): _kedro_connection(BIKE_RENTALS_PROJECT, bike_rentals_conf_source),
    }
    if gateway_url is not None:
        gateway: dict[str, str] = {"conn_type": "conveyor_gateway", "host": gateway_url}
        if gateway_token:
            gateway["password"] = gateway_token
        conns["CONVEYOR_GATEWAY_DEFAULT"] = gateway
    return {f"AIRFLOW_CONN_{name}": json.dumps(conn) for name, conn in conns.items()}


def _kedro_connection(project: Path, conf_source: Path | None) -> dict:
    extra = {"project_path": str(project)}
    if conf_source is not None:
        extra["conf_source"] = str(conf_source)
    return {"conn_type": "conveyor_kedro", "extra": extra}


def private_kedro_conf(folder: Path, kedro_project: Path = KEDRO_PROJECT, name: str = "kedro") -> Path:
    """A copy of the project's configuration, ``folder/<name>-conf``, whose ``data_root`` is
    ``folder/<name>-data`` (a second project takes another ``name``).

    The catalog writes its intermediate datasets to fixed files under ``data_root``; a test
    session or a benchmark that points its Kedro runs here (``connection_env(kedro_conf_source=)``,
    ``kedro run --conf-source``) never touches, nor races with, the working tree's ``data/``.
    """
    conf = folder / f"{name}-conf"
    shutil.copytree(kedro_project / "conf", conf)
    (conf / "base" / "globals.yml").write_text(f"data_root: {folder / f'{name}-data'}\n")
    return conf


# Where tasks track comes from the ``mlflow_default`` connection alone. ``mlflow.set_tracking_uri``
# writes MLFLOW_TRACKING_URI into the caller's environment, so a process that used another server
# before starting Airflow would otherwise send every Kedro run of its tasks there.
NOT_INHERITED = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _inherited_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the local Celery workers: the worker's name.

    Every task instance records the host it ran on; the workers here share one host, whose FQDN
    would not say which of them ran a task (nor where a retry went). Set only in the workers'
    environment, so every other component keeps Airflow's default.
    """
    return os.environ[WORKER_NAME_ENV]


@dataclass
class LocalAirflow:
    """Airflow 3 whose whole state (config, logs, database, broker) lives under ``home``.

    ``parallelism`` defaults to the number of cores (at least 2): every running task is a Python
    process importing torch or MLflow, and more of them than cores only makes each one slower.
    ``extra_env`` reaches every component and task, e.g. ``AIRFLOW_CONN_MLFLOW_DEFAULT``.

    ``executor`` is ``local`` (LocalExecutor: the scheduler runs the tasks) or ``celery``:
    ``celery_workers`` workers named ``celery-worker-<n>`` (their Celery node name and the
    ``hostname`` of the task instances they run) take ``worker_concurrency`` tasks each. One task
    per worker by default: a worker never holds a second task back while another worker idles.
    """

    home: Path
    dags_folder: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    username: str = "admin"
    password: str = "admin"
    parallelism: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))
    extra_env: dict[str, str] = field(default_factory=dict)
    state_file: Path | None = None
    executor: str = "local"
    celery_workers: int = 2
    worker_concurrency: int = 1
    postgres: LocalPostgres | None = None
    redis: LocalRedis | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, not {self.executor!r}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> str:
        """What ``start()`` starts, for progress lines."""
        parts = ["PostgreSQL", "db migrate", ", ".join(COMPONENTS)]
        if self.worker_names:
            parts += ["Redis", f"{len(self.worker_names)} Celery workers"]
        return ", ".join(parts)

    @property
    def worker_names(self) -> list[str]:
        """The Celery workers' names (none with LocalExecutor)."""
        if self.executor != "celery":
            return []
        return [f"celery-worker-{n}" for n in range(1, self.celery_workers + 1)]

    def log_path(self, component: str) -> Path:
        return self.home / "logs" / f"{component}.log"

    def client(self, timeout: float = 30.0):
        """A REST client logged in as the admin user (sync; see ``conveyor.clients.airflow``)."""
        from conveyor.clients.airflow import AirflowClient

        return AirflowClient(self.url, self.username, self.password, timeout=timeout)

    def env(self) -> dict[str, str]:
        """The environment of every component: config as env vars, so ``home`` needs no airflow.cfg edits."""
        if self.postgres is None:
            raise RuntimeError("LocalAirflow.env() needs the database: call start() first")
        secret = self._secrets()
        venv_bin = str(Path(sys.executable).parent)
        return {
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder.resolve()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": EXECUTORS[self.executor],
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__FERNET_KEY": secret["fernet_key"],
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self._passwords_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.sqlalchemy_url("airflow"),
            "AIRFLOW__API__HOST": self.host,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secret["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": secret["jwt_secret"],
            # Two Airflows on one host (a test session beside ``make airflow``) must not share
            # the log-server ports, or the second scheduler dies with "address already in use".
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(secret["worker_log_port"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(secret["trigger_log_port"]),
            # New DAG files show up within seconds instead of minutes.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # The task supervisor waits in select() for up to this long per loop, and when the
            # task process closes its pipes before it can be reaped the supervisor sleeps a whole
            # interval (the default 5 s) with nothing to wait on: the executor slot stays taken
            # after the task reported success, and the next task of a backfill waits for it.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "KEDRO_DISABLE_TELEMETRY": "1",
            "DO_NOT_TRACK": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            **self._celery_env(),
            **self.extra_env,
        }

    def _celery_env(self) -> dict[str, str]:
        """The broker, and Celery's task results beside Airflow's own tables."""
        if self.executor != "celery":
            return {}
        if self.redis is None or self.postgres is None:
            raise RuntimeError("LocalAirflow.env() needs the broker: call start() first")
        return {
            "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
            # Celery's database backend takes any SQLAlchemy URL behind ``db+``.
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.postgres.sqlalchemy_url('airflow')}",
        }

    @property
    def _passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    def _secrets(self) -> dict:
        """Keys shared by all components, kept in ``home`` so a restart can read what it encrypted."""
        path = self.home / "conveyor-secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        from cryptography.fernet import Fernet

        values = {
            "fernet_key": Fernet.generate_key().decode(),
            "secret_key": secrets.token_urlsafe(32),
            "jwt_secret": secrets.token_urlsafe(32),
            "worker_log_port": free_port(),
            "trigger_log_port": free_port(),
        }
        atomic.write_text(path, json.dumps(values))  # a truncated file would lock this home out for good
        path.chmod(0o600)
        return values

    def start(self, timeout: float = 180.0) -> LocalAirflow:
        started = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        ensure_port_free(self.host, self.port)
        if self.postgres is None:
            self.postgres = LocalPostgres(self.home / "postgres")
        self.postgres.start()
        self._record("postgres", self.postgres.pid, group=False, stop_signal="SIGINT")
        self.postgres.create_database("airflow")
        if self.executor == "celery":
            if self.redis is None:
                self.redis = LocalRedis(self.home / "redis")
            self.redis.start()
            self._record("redis", self.redis.pid)
        # A known login instead of the generated password Airflow would print once.
        atomic.write_text(self._passwords_file, json.dumps({self.username: self.password}))
        env = {**_inherited_env(), **self.env()}
        self._migrate(env)
        try:
            for component in COMPONENTS:
                cmd = [sys.executable, "-m", "airflow", component]
                self.procs[component] = start_group(cmd, self.log_path(component), env=env, cwd=self.home)
                self._record(component, self.procs[component].pid)
            for name in self.worker_names:
                # By name, not __name__: under ``python -m conveyor.local.airflow`` that is __main__.
                worker_env = {
                    **env,
                    WORKER_NAME_ENV: name,
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "conveyor.local.airflow.worker_hostname",
                }
                self.procs[name] = start_group(
                    self._worker_command(name), self.log_path(name), env=worker_env, cwd=self.home
                )
                self._record(name, self.procs[name].pid)
            self._wait_healthy(timeout - (time.monotonic() - started))
        except BaseException:
            self.stop()
            raise
        return self

    def _worker_command(self, name: str) -> list[str]:
        """``airflow celery worker`` as one of several on this host.

        The workers share ``home/logs``, from which the api-server reads every task log; a log
        server per worker would only compete for the one ``worker_log_server_port``. Mingle and
        gossip (workers syncing with each other) serve nothing Airflow uses and cost start-up
        time and CPU.
        """
        return [
            *(sys.executable, "-m", "airflow", "celery", "worker"),
            *("--celery-hostname", f"{name}@%h", "--concurrency", str(self.worker_concurrency)),
            *("--skip-serve-logs", "--without-mingle", "--without-gossip"),
        ]

    def celery_workers_online(self) -> set[str]:
        """The names of the Celery workers that answer a ping through the broker."""
        if self.redis is None:
            return set()
        from celery import Celery

        with Celery(broker=self.redis.url) as app:
            replies = app.control.ping(timeout=1.0) or []
        return {node.split("@", 1)[0] for reply in replies for node in reply}

    def _migrate(self, env: dict[str, str]) -> None:
        log = self.log_path("db-migrate")
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            result = subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed (exit {result.returncode}):\n{log_tail(log)}")

    def _wait_healthy(self, timeout: float) -> None:
        """Wait until the API answers, the scheduler, dag-processor and triggerer heartbeat, and
        every Celery worker listens (tasks sent earlier would all go to the first one up)."""
        health = f"{self.url}/api/v2/monitor/health"
        try:
            wait_http(health, timeout=timeout, proc=self.procs["api-server"])
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(
                f"Airflow api-server did not start: {exc}\n{log_tail(self.log_path('api-server'))}"
            ) from exc
        # The api-server builds the execution API (the one tasks call) on its first request:
        # 5.6 s measured here, which the first task would otherwise spend in its start call.
        wait_http(f"{self.url}/execution/health", timeout=max(timeout, 30.0), proc=self.procs["api-server"])
        deadline = time.monotonic() + max(timeout, 30.0)
        unhealthy: list[str] = list(COMPONENTS[1:])
        while time.monotonic() < deadline:
            for component, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"Airflow {component} exited with {proc.returncode}:\n"
                        f"{log_tail(self.log_path(component))}"
                    )
            with self.client() as client:
                status = client.health()
            unhealthy = [
                name
                for name, key in (
                    ("scheduler", "scheduler"),
                    ("dag-processor", "dag_processor"),
                    ("triggerer", "triggerer"),
                )
                if (status.get(key) or {}).get("status") != "healthy"
            ]
            if not unhealthy and self.worker_names:
                unhealthy = sorted(set(self.worker_names) - self.celery_workers_online())
            if not unhealthy:
                return
            time.sleep(1.0)
        raise RuntimeError(f"Airflow components not healthy after {timeout:.0f}s: {', '.join(unhealthy)}")

    def stop(self) -> None:
        """Stop the components, then the database they write to.

        All groups get SIGTERM at once: each component takes seconds to shut down gracefully,
        and one after the other that adds up to half a minute.
        """
        for proc in self.procs.values():
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        names = list(self.procs)
        for component in reversed(names):
            stop_group(self.procs.pop(component), timeout=20.0)
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self._forget(*names, "redis", "postgres")

    def _record(self, name: str, pid: int | None, **kwargs: object) -> None:
        if self.state_file is not None and pid is not None:
            services.record(self.state_file, f"airflow-{name}", pid, url=self.url, **kwargs)

    def _forget(self, *names: str) -> None:
        if self.state_file is not None:
            services.forget(self.state_file, *(f"airflow-{name}" for name in names))

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port(preferred: int) -> int:
    """``preferred`` when nothing listens there (bookmarks keep working), else any free port."""
    try:
        ensure_port_free("127.0.0.1", preferred)
    except RuntimeError:
        return free_port()
    return preferred


def main(argv: list[str] | None = None) -> int:
    """``make airflow``: MLflow + Airflow under ``var/`` for exploring the DAGs in the UI."""
    from conveyor.local.mlflow_server import MlflowServer

    parser = argparse.ArgumentParser(description="Start a local Airflow (and MLflow) for the Conveyor DAGs.")
    parser.add_argument("--var", type=Path, default=Path("var"), help="state folder (default: var)")
    parser.add_argument("--dags", type=Path, default=REPO_ROOT / "dags")
    parser.add_argument("--port", type=int, default=8080, help="api-server port if free (default 8080)")
    parser.add_argument("--mlflow-port", type=int, default=5000, help="MLflow port if free (default 5000)")
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local (default): LocalExecutor; celery: CeleryExecutor with Redis and named workers",
    )
    parser.add_argument(
        "--celery-workers", type=int, default=2, help="Celery workers with --executor celery (default 2)"
    )
    args = parser.parse_args(argv)
    state_file = args.var / "services.json"
    running = services.running(state_file)
    if "airflow-api-server" in running:
        print(f"Airflow already runs at {running['airflow-api-server']['url']} (login admin / admin)")
        print("Stop everything with: make down")
        return 0

    mlflow = MlflowServer(root=args.var / "mlflow", port=_port(args.mlflow_port)).start()
    assert mlflow.proc is not None
    services.record(state_file, "mlflow", mlflow.proc.pid, url=mlflow.url)
    airflow = LocalAirflow(
        home=(args.var / "airflow").resolve(),
        dags_folder=args.dags,
        port=_port(args.port),
        extra_env=connection_env(mlflow.url),
        state_file=state_file,
        executor=args.executor,
        celery_workers=args.celery_workers,
    )
    started = time.monotonic()
    print(f"starting Airflow ({airflow.describe()}) under {airflow.home} ...", flush=True)
    airflow.start()
    print(f"Airflow  {airflow.url}   login: {airflow.username} / {airflow.password}")
    if airflow.redis is not None:
        print(f"Celery   broker {airflow.redis.url}, workers {', '.join(airflow.worker_names)}")
    print(f"MLflow   {mlflow.url}")
    print(f"logs     {airflow.home / 'logs'}   (ready in {time.monotonic() - started:.0f}s)")
    print("DAGs start paused: unpause them in the UI. Stop everything with: make down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
