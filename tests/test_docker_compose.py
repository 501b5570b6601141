"""docker/compose.yaml, checked without a Docker engine: against the Compose Specification's JSON
schema, and every command, flag and setting against what ``conveyor.local`` runs (and its tests
exercise) for the same topology.

Where ``conveyor.local`` builds a command line (a gateway replica, the rollout controller, the
MLflow server, Redis, nginx, Prometheus, a Celery worker), the test makes it build one with
``start_group`` replaced, so nothing starts, and compares flags; the Airflow settings come from
``LocalAirflow.env()`` and ``connection_env``. Commands are parsed by the real parsers:
``conveyor.cli.parser()``, Airflow's ``get_parser()`` (in a subprocess with a scratch
``AIRFLOW_HOME``), and MLflow's click command.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import sqlalchemy as sa
import yaml

import conveyor.local.cluster
import conveyor.local.gateway
import conveyor.local.mlflow_server
import conveyor.local.nginx
import conveyor.local.prometheus
import conveyor.local.redis
from conveyor.cli import parser as conveyor_parser
from conveyor.local.airflow import COMPONENTS, REPO_ROOT, LocalAirflow, connection_env
from conveyor.local.cluster import ControllerProcess, GatewayCluster
from conveyor.local.mlflow_server import MlflowServer
from conveyor.local.nginx import LoadBalancer
from conveyor.local.prometheus import ALERT_RULES, Prometheus
from conveyor.local.redis import LocalRedis

DOCKER = REPO_ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERFILE = DOCKER / "Dockerfile"
PROMETHEUS_CONFIG = DOCKER / "prometheus" / "prometheus.compose.yml"
SCHEMA = Path(__file__).resolve().parent / "support" / "compose-spec.json"
# Where the image lays out the repository's DAGs and Kedro projects (docker/Dockerfile).
IMAGE_REPO = "/opt/conveyor"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


# ---- reading the files ---------------------------------------------------------------------------
def _env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), f".env.example:{number}: {line!r}"
        assert name not in values, f".env.example sets {name} twice"
        values[name] = value
    return values


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _substitute(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string (``$$`` is a literal ``$``)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":-", "-"):
            return arg if value is None or (op == ":-" and value == "") else value
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise KeyError(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return arg if value is not None and (op == "+" or value != "") else ""
        if value is None:
            raise KeyError(f"{name} is unset")
        return value

    parts = text.split("$$")
    return "$".join(VARIABLE.sub(one, part) for part in parts)


def _interpolate(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return _substitute(node, env)
    if isinstance(node, dict):
        return {key: _interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(item, env) for item in node]
    return node


RAW: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
ENV = _env_example()
COMPOSED: dict[str, Any] = _interpolate(RAW, ENV)
SERVICES: dict[str, dict[str, Any]] = COMPOSED["services"]


def _command(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: str(value) for key, value in env.items()}


def _services_running(*prefix: str) -> list[str]:
    return [
        name
        for name in SERVICES
        if "command" in SERVICES[name] and _command(name)[: len(prefix)] == list(prefix)
    ]


def _flags(argv: list[str]) -> set[str]:
    return {arg.split("=", 1)[0] for arg in argv if arg.startswith("-")}


def _option(argv: list[str], flag: str) -> str:
    """The value of ``flag`` in ``argv`` (``--flag value`` or ``--flag=value``)."""
    for i, arg in enumerate(argv):
        if arg == flag:
            return argv[i + 1]
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {argv}")


def _mounts(service: str) -> dict[str, str]:
    """Container path -> host path (relative to docker/) or volume name, of a service's volumes."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


def _host_file(service: str, container_path: str) -> Path:
    source = _mounts(service)[container_path]
    assert source.startswith("./"), f"{service}: {container_path} is not mounted from docker/"
    return (DOCKER / source).resolve()


def _shell_lines(script: str) -> Iterator[list[str]]:
    """The simple command lines of a ``bash -c`` script (heredoc bodies skipped)."""
    heredoc = None
    for line in script.splitlines():
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if match := re.search(r"<<-?'?(\w+)'?", line):
            heredoc = match[1]
        if line.strip() and not line.lstrip().startswith("#"):
            words = shlex.split(line)
            yield words[1:] if words[0] == "exec" else words


def _all_commands() -> Iterator[tuple[str, list[str]]]:
    """Every command line of the compose file: service commands, shell scripts, CMD healthchecks."""
    for name in SERVICES:
        if "command" in SERVICES[name]:
            command = _command(name)
            if command[:2] in (["bash", "-c"], ["sh", "-c"]):
                for line in _shell_lines(command[2]):
                    yield name, line
            else:
                yield name, command
        test = SERVICES[name].get("healthcheck", {}).get("test")
        if isinstance(test, list) and test[0] == "CMD":
            yield f"{name} healthcheck", test[1:]


# ---- capturing what conveyor.local starts --------------------------------------------------------
class Captured(Exception):
    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        super().__init__(cmd)
        self.cmd, self.env = cmd, env


def _capture(monkeypatch: pytest.MonkeyPatch, module: ModuleType, start: Callable[[], object]) -> Captured:
    """The command line and environment ``start()`` would launch, launching nothing."""

    def start_group(cmd: list[str], log_path: Path, env: dict[str, str] | None = None, **_: object) -> None:
        raise Captured([str(part) for part in cmd], dict(env or {}))

    monkeypatch.setattr(module, "start_group", start_group)
    with pytest.raises(Captured) as info:
        start()
    return info.value


def _conveyor_argv(captured: Captured) -> list[str]:
    """The arguments after ``python -m conveyor.cli`` (or the ``conveyor`` script compose runs)."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["conveyor"] == "conveyor.cli:main"
    if Path(captured.cmd[0]).name == "conveyor":
        return captured.cmd[1:]
    assert captured.cmd[1:3] == ["-m", "conveyor.cli"], captured.cmd
    return captured.cmd[3:]


GATEWAYS = _services_running("conveyor", "serve")
CONTROLLERS = _services_running("conveyor", "controller")
WORKERS = _services_running("airflow", "celery", "worker")
AIRFLOW_SERVICES = [name for name in SERVICES if name.startswith("airflow-")]


def _parsed(service: str) -> Any:
    return conveyor_parser().parse_args(_command(service)[1:])


def _gateway_upstreams() -> list[str]:
    """``service:port`` of each replica: Docker's DNS resolves service names (not ``hostname:``)."""
    return [f"{name}:{_parsed(name).port}" for name in GATEWAYS]


def _published(service: str) -> dict[int, int]:
    """Container port -> published host port."""
    published = {}
    for port in SERVICES[service].get("ports", []):
        host, container = str(port).rsplit(":", 1)
        published[int(container)] = int(host.rsplit(":", 1)[-1])
    return published


# ---- (a) the Compose Specification ---------------------------------------------------------------
def test_compose_file_validates_against_the_compose_spec() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for label, document in (("as written", RAW), ("interpolated with .env.example", COMPOSED)):
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)
        ]
        assert not errors, f"compose.yaml {label}:\n" + "\n".join(errors)


def test_the_schema_check_rejects_a_broken_service() -> None:
    """The check above means something: the vendored schema knows the service keys and values."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    broken = {"services": {"x": {"image": "a", "depends_on": {"y": {"condition": "service_happy"}}}}}
    assert list(validator.iter_errors(broken))
    assert list(validator.iter_errors({"services": {"x": {"image": "a", "helthcheck": {}}}}))


def test_services_form_the_documented_topology() -> None:
    assert {"postgres", "redis", "mlflow", "nginx", "prometheus", "grafana", "airflow-init"} <= set(SERVICES)
    assert len(GATEWAYS) == 2 and len(CONTROLLERS) == 1 and len(WORKERS) == 2
    for component in COMPONENTS:
        assert _services_running("airflow", component), f"no service runs `airflow {component}`"
    # Every Conveyor service runs the image of docker/Dockerfile.
    for name in [*GATEWAYS, *CONTROLLERS, *AIRFLOW_SERVICES, "mlflow"]:
        build = SERVICES[name]["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
        assert SERVICES[name]["image"] == SERVICES["mlflow"]["image"], name


def test_depends_on_waits_for_health_or_completion() -> None:
    for name, service in SERVICES.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            if dependency == "airflow-init":
                assert spec["condition"] == "service_completed_successfully", name
            else:
                assert spec["condition"] == "service_healthy", f"{name} -> {dependency}"
                assert "healthcheck" in SERVICES[dependency], f"{name} waits for {dependency}'s missing check"
    assert SERVICES["airflow-init"]["restart"] == "no"
    for name in AIRFLOW_SERVICES:
        if name != "airflow-init":
            assert "airflow-init" in SERVICES[name]["depends_on"], name


# ---- (f) variables -------------------------------------------------------------------------------
def test_every_interpolated_variable_is_in_env_example() -> None:
    used: dict[str, set[str]] = {}
    for text in _strings(RAW):
        unbraced = re.findall(r"\$(?!\{|\$)\w*", text.replace("$$", ""))
        assert not unbraced, f"use ${{NAME}} (or $$ for a literal $): {text!r}"
        for match in VARIABLE.finditer(text.replace("$$", "")):
            used.setdefault(match["name"], set()).add(match["op"] or "")
            if match["op"] == ":-":
                assert match["arg"] == ENV.get(match["name"]), f"{match['name']}: default != .env.example"
    assert set(used) == set(ENV), {
        "missing in .env.example": set(used) - set(ENV),
        "unused": set(ENV) - set(used),
    }
    for name, ops in used.items():
        if ":?" in ops:  # the secrets: the example holds placeholders, never a usable value
            assert ENV[name].startswith("change-me"), name
            assert ops == {":?"}, f"{name} is a secret everywhere or nowhere"


# ---- (b) conveyor commands -----------------------------------------------------------------------
def test_every_conveyor_command_parses() -> None:
    commands = [(name, argv) for name, argv in _all_commands() if argv[0] == "conveyor"]
    assert len(commands) == len(GATEWAYS) + len(CONTROLLERS)
    for name, argv in commands:
        try:
            conveyor_parser().parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{name}: `{shlex.join(argv)}` does not parse ({exc})")


def test_gateway_replicas_run_as_the_local_cluster_runs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = GatewayCluster(root=tmp_path, tracking_uri="http://m:5000", store_url="postgresql://g@db/store")
    local = _capture(monkeypatch, conveyor.local.gateway, cluster.replica(0).start)
    local_argv = _conveyor_argv(local)
    assert local_argv[0] == "serve"
    assert {"--store", "--no-controller", "--replica-id"} <= _flags(local_argv)  # a replica's flags
    local_args = conveyor_parser().parse_args(local_argv)
    replicas = [_parsed(name) for name in GATEWAYS]
    for name, args in zip(GATEWAYS, replicas, strict=True):
        argv = _command(name)[1:]
        assert _flags(local_argv) <= _flags(argv), f"{name} lacks {_flags(local_argv) - _flags(argv)}"
        assert args.controller is local_args.controller is False
        assert sa.engine.make_url(args.store).get_backend_name() == "postgresql"
        assert args.host == "0.0.0.0"
        env = _environment(name)
        assert set(local.env) <= set(env), f"{name} lacks {set(local.env) - set(env)}"
        assert env["MLFLOW_TRACKING_URI"] == args.tracking_uri
        assert env["CONVEYOR_GATEWAY_TOKEN"] == ENV["CONVEYOR_GATEWAY_TOKEN"]
        assert f"http://127.0.0.1:{args.port}/health" in " ".join(SERVICES[name]["healthcheck"]["test"])
        assert _mounts(name)[args.log_url] == "inference-log"
    assert len({args.replica_id for args in replicas}) == len(replicas), "replica ids must differ"
    for attribute in ("store", "tracking_uri", "log_url"):
        assert len({getattr(args, attribute) for args in replicas}) == 1, f"replicas differ in {attribute}"
    assert replicas[0].tracking_uri == f"http://mlflow:{_mlflow_port()}"


def test_controller_runs_as_the_local_cluster_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller = ControllerProcess(tmp_path, "postgresql://g@db/store", "http://m:5000")
    local = _capture(monkeypatch, conveyor.local.cluster, controller.start)
    local_argv = _conveyor_argv(local)
    assert local_argv[0] == "controller"
    (name,) = CONTROLLERS
    argv = _command(name)[1:]
    assert _flags(local_argv) <= _flags(argv), f"{name} lacks {_flags(local_argv) - _flags(argv)}"
    args = _parsed(name)
    gateway = _parsed(GATEWAYS[0])
    assert (args.store, args.tracking_uri) == (gateway.store, gateway.tracking_uri)
    assert args.holder and args.lease_s > 0
    env = _environment(name)
    assert set(local.env) <= set(env)
    assert env["MLFLOW_TRACKING_URI"] == args.tracking_uri


# ---- (c) airflow commands ------------------------------------------------------------------------
# Airflow's and MLflow's parsers take seconds to import: both run at once, each in a subprocess
# (Airflow's with a scratch AIRFLOW_HOME, so nothing of this session's configuration leaks in).
AIRFLOW_PARSE = r"""
import importlib, json, sys
from airflow.cli.cli_parser import get_parser

parser = get_parser()
problems = []
for where, argv in json.loads(sys.argv[1]):
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        problems.append(f"{where}: airflow {' '.join(argv)} (exit {exc.code})")
module, _, attr = sys.argv[2].rpartition(".")
if not hasattr(importlib.import_module(module), attr):
    problems.append(f"no Celery app {sys.argv[2]}")
print(json.dumps(problems))
"""
MLFLOW_PARSE = r"""
import json, sys
import click
from mlflow.cli import server

try:
    print(json.dumps(server.make_context("server", json.loads(sys.argv[1])).params, default=str))
except click.ClickException as exc:
    print(json.dumps({"error": exc.format_message()}))
"""


def _airflow_commands() -> list[tuple[str, list[str]]]:
    return [(where, argv[1:]) for where, argv in _all_commands() if argv[0] == "airflow"]


@pytest.fixture(scope="module")
def parsers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.Popen]]:
    home = tmp_path_factory.mktemp("airflow-home")
    celery_apps = {_option(argv, "--app") for _, argv in _all_commands() if argv[0] == "celery"}
    assert len(celery_apps) == 1, celery_apps
    # `airflow celery ...` exists only with CeleryExecutor configured.
    airflow_env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": _environment("airflow-scheduler")["AIRFLOW__CORE__EXECUTOR"],
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:1/0",
    }
    mlflow_env = {"PATH": airflow_env["PATH"], "HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = {
        "airflow": subprocess.Popen(
            [sys.executable, "-c", AIRFLOW_PARSE, json.dumps(_airflow_commands()), *celery_apps],
            env=airflow_env,
            **pipe,
        ),
        "mlflow": subprocess.Popen(
            [sys.executable, "-c", MLFLOW_PARSE, json.dumps(_command("mlflow")[2:])], env=mlflow_env, **pipe
        ),
    }
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _answer(proc: subprocess.Popen) -> Any:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.splitlines()[-1])


def test_every_airflow_command_is_a_real_airflow_command(parsers: dict[str, subprocess.Popen]) -> None:
    commands = _airflow_commands()
    assert (
        len(commands) >= len(AIRFLOW_SERVICES) + 3
    )  # + the scheduler's, dag-processor's, triggerer's checks
    assert ("airflow-init", ["db", "migrate"]) in commands  # what LocalAirflow._migrate runs
    assert _answer(parsers["airflow"]) == []


def test_celery_workers_run_as_local_airflow_runs_them(tmp_path: Path) -> None:
    local = LocalAirflow(home=tmp_path, dags_folder=REPO_ROOT / "dags", executor="celery")
    local_argv = local._worker_command("celery-worker-1")
    assert local_argv[1:5] == ["-m", "airflow", "celery", "worker"]
    local_hostname = _option(local_argv, "--celery-hostname")
    assert local_hostname == "celery-worker-1@%h"
    nodes = {}
    for name in WORKERS:
        argv = _command(name)
        assert _flags(local_argv[2:]) <= _flags(argv), f"{name} lacks {_flags(local_argv) - _flags(argv)}"
        node = _option(argv, "--celery-hostname")
        assert node.endswith("@%h"), node  # as LocalAirflow: <name>@<host>
        hostname = SERVICES[name]["hostname"]
        nodes[node.split("@")[0]] = hostname
        assert _option(argv, "--concurrency") == ENV["AIRFLOW_WORKER_CONCURRENCY"]
        health = SERVICES[name]["healthcheck"]["test"]
        assert _option(health, "--destination") == node.replace("%h", hostname), name
    assert sorted(nodes) == local.worker_names, "the workers' Celery names, as LocalAirflow names them"
    assert len(set(nodes.values())) == len(nodes), "each worker needs its own hostname"


# ---- (d) the MLflow server -----------------------------------------------------------------------
def _mlflow_port() -> int:
    return int(_option(_command("mlflow"), "--port"))


def test_mlflow_server_options_are_accepted_by_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parsers: dict[str, subprocess.Popen]
) -> None:
    argv = _command("mlflow")
    assert argv[:2] == ["mlflow", "server"]
    params = _answer(parsers["mlflow"])
    assert "error" not in params, params
    assert sa.engine.make_url(params["backend_store_uri"]).get_backend_name() == "postgresql"
    assert params["serve_artifacts"] is True
    assert _mounts("mlflow")[params["artifacts_destination"]] == "mlflow-artifacts"
    assert f"mlflow:{_mlflow_port()}" in params["allowed_hosts"].split(",")  # the clients' Host header
    assert params["host"] == "0.0.0.0"

    local_server = MlflowServer(root=tmp_path, backend_uri="postgresql://mlflow@db/mlflow")
    monkeypatch.setattr(conveyor.local.mlflow_server, "ensure_port_free", lambda *a: None)
    local = _capture(monkeypatch, conveyor.local.mlflow_server, local_server.start)
    assert local.cmd[1:4] == ["-m", "mlflow", "server"]
    assert _flags(local.cmd[4:]) <= _flags(argv), f"mlflow lacks {_flags(local.cmd[4:]) - _flags(argv)}"
    env = _environment("mlflow")
    assert {key: env.get(key) for key in local.env} == local.env


# ---- (e) Airflow's configuration -----------------------------------------------------------------
# Keys whose value depends on the site (paths, hosts, ports, secrets, sizes): compared by shape.
SITE_SPECIFIC = {
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PARALLELISM",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__API__HOST",
    "AIRFLOW__API__PORT",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__API__WORKERS",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
}


def _local_celery_env(home: Path) -> dict[str, str]:
    """``LocalAirflow.env()`` for CeleryExecutor, with stand-ins for the database and broker it names."""
    database = SimpleNamespace(
        sqlalchemy_url=lambda name: f"postgresql+psycopg2://postgres@/{name}?host=/run"
    )
    broker = SimpleNamespace(url="redis://127.0.0.1:6379/0")
    local = LocalAirflow(
        home=home,
        dags_folder=REPO_ROOT / "dags",
        executor="celery",
        postgres=database,  # type: ignore[arg-type]
        redis=broker,  # type: ignore[arg-type]
    )
    env = local.env()
    env.pop("PATH")
    return env


def test_airflow_env_covers_what_local_airflow_sets_for_celery(tmp_path: Path) -> None:
    local = _local_celery_env(tmp_path)
    assert local["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert {"AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND"} <= set(local)
    envs = {name: _environment(name) for name in AIRFLOW_SERVICES}
    for name, env in envs.items():
        assert set(local) <= set(env), f"{name} lacks {sorted(set(local) - set(env))}"
        same = {key: env[key] for key in local if key not in SITE_SPECIFIC}
        assert same == {key: local[key] for key in same}, name
        scheduler = envs["airflow-scheduler"]
        assert {key: env.get(key) for key in scheduler} == scheduler, f"{name}: not the shared Airflow env"
    env = envs["airflow-scheduler"]
    # The same relations as LocalAirflow's values.
    database = sa.engine.make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert database.get_backend_name() == "postgresql" and database.host == "postgres"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    broker = sa.engine.make_url(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (
        broker.drivername == "redis" and broker.host == "redis" and broker.password == ENV["REDIS_PASSWORD"]
    )
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        f"http://airflow-api-server:{env['AIRFLOW__API__PORT']}/execution/"
    )
    assert SERVICES["airflow-api-server"]["hostname"] == "airflow-api-server"
    assert int(env["AIRFLOW__API__PORT"]) in _published("airflow-api-server")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{ENV['AIRFLOW_ADMIN_USER']}:admin"
    assert PurePosixPath(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).parent.as_posix() in (
        _mounts("airflow-api-server")
    )
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == f"{IMAGE_REPO}/dags"
    for job in ("SchedulerJob", "DagProcessorJob", "TriggererJob"):
        assert any(
            job in " ".join(SERVICES[n].get("healthcheck", {}).get("test", [])) for n in AIRFLOW_SERVICES
        )


def test_airflow_connections_and_variables_match_local_and_the_demo(tmp_path: Path) -> None:
    from conveyor.demo.stack import airflow_env
    from conveyor.local.gateway import GatewayServer

    env = _environment("airflow-scheduler")
    nginx = f"http://nginx:{_nginx_render().PORT}"
    mlflow = f"http://mlflow:{_mlflow_port()}"
    expected = connection_env(
        mlflow,
        kedro_project=REPO_ROOT / "kedro_project",
        gateway_url=nginx,
        gateway_token=ENV["CONVEYOR_GATEWAY_TOKEN"],
    )
    for key, value in expected.items():
        assert key in env, f"Airflow lacks the connection {key}"
        assert json.loads(env[key]) == json.loads(value.replace(str(REPO_ROOT), IMAGE_REPO)), key
        project = json.loads(env[key]).get("extra", {}).get("project_path")
        if project:  # the image lays the Kedro projects out as the repository does
            assert (REPO_ROOT / PurePosixPath(project).relative_to(IMAGE_REPO) / "pyproject.toml").is_file()
    gateway = GatewayServer(root=tmp_path, tracking_uri=mlflow, log_url=_parsed(GATEWAYS[0]).log_url)
    variables = airflow_env(mlflow, gateway, "http://pushgateway:9091")
    for key in (k for k in variables if k.startswith("AIRFLOW_VAR_")):
        assert env.get(key) == variables[key], key
    assert "pushgateway" in SERVICES


# ---- (g) nginx -----------------------------------------------------------------------------------
def _nginx_render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docker_nginx_render", DOCKER / "nginx" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nginx_conf_is_the_local_renderers_output() -> None:
    render = _nginx_render()
    assert (DOCKER / "nginx" / "nginx.conf").read_text() == render.render(), (
        "docker/nginx/nginx.conf is stale: run .venv/bin/python docker/nginx/render.py"
    )
    assert _gateway_upstreams() == render.UPSTREAMS


def test_nginx_service_runs_the_rendered_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    render = _nginx_render()
    argv = _command("nginx")
    balancer = LoadBalancer(root=tmp_path, upstreams=["127.0.0.1:1"])
    monkeypatch.setattr(conveyor.local.nginx, "debian_binary", lambda name: name)
    local = _capture(monkeypatch, conveyor.local.nginx, balancer.start)
    assert argv[0] == "nginx" and _flags(local.cmd) == _flags(argv)
    assert _option(argv, "-e") == _option(local.cmd, "-e")
    assert _option(argv, "-p") == str(render.ROOT)
    assert _option(argv, "-c") == render.CONF_IN_CONTAINER
    assert _host_file("nginx", render.CONF_IN_CONTAINER) == DOCKER / "nginx" / "nginx.conf"
    assert str(render.ROOT / "temp") in SERVICES["nginx"]["tmpfs"]  # render_conf's temp paths live there
    assert list(_published("nginx")) == [render.PORT]
    assert set(SERVICES["nginx"]["depends_on"]) == set(GATEWAYS)


# ---- (h) Prometheus and Grafana ------------------------------------------------------------------
def test_prometheus_loads_the_shipped_rules_and_scrapes_each_replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = _command("prometheus")
    config_in_container = PurePosixPath(_option(argv, "--config.file"))
    assert _host_file("prometheus", str(config_in_container)) == PROMETHEUS_CONFIG
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    rules = [str(config_in_container.parent / rule) for rule in config["rule_files"]]
    assert [_host_file("prometheus", rule) for rule in rules] == [ALERT_RULES]
    # The host files sit as they are mounted, so promtool (below) resolves them the same way.
    assert [(PROMETHEUS_CONFIG.parent / rule).resolve() for rule in config["rule_files"]] == [ALERT_RULES]

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    local = Prometheus(root=tmp_path, targets={"conveyor-gateway": "g:1"}, pushgateway="p:2").config()
    assert set(jobs) == {job["job_name"] for job in local["scrape_configs"]}
    targets = [t for sc in jobs["conveyor-gateway"]["static_configs"] for t in sc["targets"]]
    assert targets == _gateway_upstreams(), "scrape every replica, not nginx"
    (push,) = (t for sc in jobs["pushgateway"]["static_configs"] for t in sc["targets"])
    assert jobs["pushgateway"]["honor_labels"] is True
    assert f"http://{push}" == _environment("airflow-scheduler")["AIRFLOW_VAR_CONVEYOR_PUSHGATEWAY_URL"]
    assert push.split(":")[0] in SERVICES

    monkeypatch.setattr(conveyor.local.prometheus, "debian_binary", lambda name: name)
    monkeypatch.setattr(conveyor.local.prometheus, "ensure_port_free", lambda *a: None)
    started = _capture(monkeypatch, conveyor.local.prometheus, Prometheus(root=tmp_path / "p").start)
    assert _flags(started.cmd[1:]) <= _flags(argv)
    assert int(_option(argv, "--web.listen-address").rsplit(":", 1)[1]) in _published("prometheus")


def test_prometheus_compose_config_passes_promtool() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_points_at_the_compose_services() -> None:
    provisioning = DOCKER / "grafana" / "provisioning"
    assert _host_file("grafana", "/etc/grafana/provisioning") == provisioning
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    url = urlsplit(datasource["url"])
    assert url.hostname in SERVICES and url.port in _published(url.hostname)
    for provider in yaml.safe_load((provisioning / "dashboards" / "conveyor.yml").read_text())["providers"]:
        assert _host_file("grafana", provider["options"]["path"]) == DOCKER / "grafana" / "dashboards"


# ---- redis, postgres, the image ------------------------------------------------------------------
def test_redis_keeps_nothing_on_disk_as_local_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conveyor.local.redis, "debian_binary", lambda name: name)
    local = _capture(monkeypatch, conveyor.local.redis, LocalRedis(root=tmp_path).start)
    argv = _command("redis")
    for flag in ("--save", "--appendonly"):
        assert _option(argv, flag) == _option(local.cmd, flag), flag
    assert _option(argv, "--requirepass") == ENV["REDIS_PASSWORD"]


def test_postgres_init_creates_every_role_and_database_the_urls_name() -> None:
    script = (DOCKER / "postgres" / "init-databases.sh").read_text()
    created = {(m[1], m[2]): m[3] for m in re.finditer(r'^create (\w+) (\w+) "\$(\w+)"$', script, re.M)}
    assert _host_file("postgres", "/docker-entrypoint-initdb.d/10-conveyor-databases.sh") == (
        DOCKER / "postgres" / "init-databases.sh"
    )
    postgres_env = _environment("postgres")
    urls = {
        "airflow": _environment("airflow-scheduler")["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "mlflow": _option(_command("mlflow"), "--backend-store-uri"),
        "gateway store": _parsed(GATEWAYS[0]).store,
    }
    for what, text in urls.items():
        url = sa.engine.make_url(text)
        assert url.host == "postgres" and url.port == 5432, what
        variable = created[(url.username, url.database)]
        assert url.password == ENV[variable] == postgres_env[variable], what
    assert len(created) == len(urls)


def test_dockerfile_installs_what_the_services_run() -> None:
    text = DOCKERFILE.read_text()
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    (extras,) = re.findall(r"conveyor_ml-\*\.whl\)\[([\w,]+)\]", text)
    assert set(extras.split(",")) <= set(pyproject["project"]["optional-dependencies"])
    assert {"airflow", "celery", "serving", "kedro", "drift"} <= set(extras.split(","))
    pins = dict(
        line.split("==") for line in (REPO_ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )
    assert re.search(rf"^ARG TORCH_VERSION={re.escape(pins['torch'])}$", text, re.M)
    assert "-c /tmp/constraints.txt" in text
    (python,) = set(re.findall(r"python:(3\.\d+)-slim", text))
    assert pyproject["project"]["requires-python"] == f">={python},<3.{int(python.split('.')[1]) + 1}"
    for project in ("kedro_project", "examples/bike_rentals"):
        name = tomllib.loads((REPO_ROOT / project / "pyproject.toml").read_text())["project"]["name"]
        assert f"/wheels/{name.replace('-', '_')}-*.whl" in text, name
        assert f"COPY --chown=conveyor:conveyor {project} {project}" in text
    assert "COPY --chown=conveyor:conveyor dags dags" in text and f"WORKDIR {IMAGE_REPO}" in text
    assert re.search(r"^USER conveyor$", text, re.M), "the image runs as a non-root user"
