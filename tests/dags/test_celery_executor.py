"""The project's DAGs, unchanged, on Airflow with CeleryExecutor: Debian's redis-server as the
broker, Celery's results in Airflow's PostgreSQL, two named workers on loopback.

A second Airflow beside the session's (its own home, PostgreSQL, ports, broker and MLflow server),
so its backfill and its dead worker reach no other test. Each task instance records the worker
that ran it in ``hostname`` (the workers' ``[core] hostname_callable``), which is what the tests
read through the REST API.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from mlflow import MlflowClient

from conveyor.clients.airflow import AirflowClient
from conveyor.local.airflow import REPO_ROOT, LocalAirflow, connection_env, private_kedro_conf
from conveyor.local.mlflow_server import MlflowServer

MODEL = "flight_delays"
QUICK = {
    "max_rows": 2000,
    "max_epochs": 3,
    "min_roc_auc": 0.5,
    **dict.fromkeys(("roc_auc_tolerance", "f1_tolerance", "log_loss_tolerance"), 1.0),
}
# A worker that dies takes its tasks' heartbeats with it; the scheduler fails a task instance
# whose heartbeat is older than the timeout (checked every detection interval) and, as the task
# has a retry left, queues it again at once. Airflow's defaults (300 s, no retries, 300 s delay)
# would leave a dead worker's task hanging for minutes, then failed for good.
DEAD_WORKER_ENV = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "0",
}

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """This module's own registry: its versions must not show up in the session's."""
    with MlflowServer(root=tmp_path_factory.mktemp("mlflow-celery")) as server:
        yield server


@pytest.fixture(scope="module")
def celery_airflow(tmp_path_factory: pytest.TempPathFactory, mlflow: MlflowServer) -> Iterator[LocalAirflow]:
    started = time.monotonic()
    home = tmp_path_factory.mktemp("airflow-celery")
    env = connection_env(mlflow.url, kedro_conf_source=private_kedro_conf(home))
    local = LocalAirflow(
        home=home, dags_folder=REPO_ROOT / "dags", executor="celery", extra_env={**env, **DEAD_WORKER_ENV}
    )
    with local:
        print(f"\nAirflow (CeleryExecutor) {local.url} ready in {time.monotonic() - started:.1f}s")
        yield local


@pytest.fixture(scope="module")
def client(celery_airflow: LocalAirflow) -> Iterator[AirflowClient]:
    """The REST client, with ml_ci parsed and switched on (ml_cd stays paused: nothing deploys)."""
    with celery_airflow.client(timeout=60.0) as af:
        af.wait_for_dag("ml_ci", timeout=180)
        af.unpause_dag("ml_ci")
        yield af


def _until(what: str, probe: Callable[[], Any], timeout: float, poll: float = 1.0) -> Any:
    """``probe()``'s first truthy value, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f}s")
        time.sleep(poll)
    return found


def _partitions(mlflow: MlflowServer) -> dict[str, str]:
    """version -> conveyor.partition tag of every registered version."""
    # The registry named too: MlflowClient's default is the process-wide registry URI, which
    # other tests of the session point at the session's server.
    client = MlflowClient(tracking_uri=mlflow.url, registry_uri=mlflow.url)
    versions = client.search_model_versions(f"name='{MODEL}'")
    return {mv.version: mv.tags.get("conveyor.partition", "") for mv in versions}


def _kill_host(worker: psutil.Process) -> None:
    """SIGKILL a worker as its host dying would: every process group in its tree.

    The worker's own group is not all of it: Airflow 3.3's supervisor puts each task runner in a
    group of its own (so it can signal the task's subprocesses). An orphaned runner dies when it
    next talks to its dead supervisor, which a quiet computation may not do for a long time.
    """
    tree = [worker, *worker.children(recursive=True)]
    for pgid in {os.getpgid(p.pid) for p in tree}:
        os.killpg(pgid, signal.SIGKILL)


def test_a_backfill_runs_on_both_workers_and_registers_one_version_per_month(
    client: AirflowClient, celery_airflow: LocalAirflow, mlflow: MlflowServer
) -> None:
    client.create_backfill(
        "ml_ci", "2013-01-01T00:00:00Z", "2013-04-01T00:00:00Z", max_active_runs=2, dag_run_conf=QUICK
    )
    runs = _until(
        "four backfill runs",
        lambda: (r := client.list_dag_runs("ml_ci", run_type=["backfill"])) and len(r) == 4 and r,
        timeout=60,
    )
    runs = [client.wait_for_run("ml_ci", r["dag_run_id"], timeout=300) for r in runs]
    assert [r["state"] for r in runs] == ["success"] * 4, [client.why("ml_ci", r["dag_run_id"]) for r in runs]
    assert sorted(r["data_interval_start"][:7] for r in runs) == ["2013-01", "2013-02", "2013-03", "2013-04"]

    ran = [
        ti for r in runs for ti in client.task_instances("ml_ci", r["dag_run_id"]) if ti["state"] == "success"
    ]
    assert {ti["task_id"] for ti in ran} == {"validate_data", "train", "model_gate"}
    # A first try each: the retry that a dead worker needs hid no failure here.
    assert {ti["try_number"] for ti in ran} == {1}
    assert {ti["hostname"] for ti in ran} == set(celery_airflow.worker_names)
    assert sorted(_partitions(mlflow).values()) == ["2013-01", "2013-02", "2013-03", "2013-04"]


def test_a_task_whose_worker_dies_is_retried_on_the_other_worker(
    client: AirflowClient, celery_airflow: LocalAirflow, mlflow: MlflowServer
) -> None:
    versions_before = _partitions(mlflow)
    run_id = client.trigger_dag_run("ml_ci", {**QUICK, "partitions": "2013-02"})["dag_run_id"]

    def train() -> dict:
        return client.task_instance("ml_ci", run_id, "train")

    first = _until(
        "train running on a worker",
        lambda: (ti := train())["state"] == "running" and ti["hostname"] and ti,
        timeout=120,
        poll=0.5,
    )
    victim = first["hostname"]
    (survivor,) = set(celery_airflow.worker_names) - {victim}
    _kill_host(psutil.Process(celery_airflow.procs[victim].pid))
    killed = time.monotonic()

    retry = _until("train's second try", lambda: (ti := train())["try_number"] == 2 and ti, timeout=120)
    print(f"\n{victim} killed; train's try 2 {retry['state']} after {time.monotonic() - killed:.0f}s")
    finished = client.wait_for_run("ml_ci", run_id, timeout=300)
    assert finished["state"] == "success", client.why("ml_ci", run_id)
    done = train()
    assert (done["try_number"], done["state"], done["hostname"]) == (2, "success", survivor)
    assert celery_airflow.celery_workers_online() == {survivor}
    # The month is registered once: the killed try died before registering, the retry did.
    new = {v: p for v, p in _partitions(mlflow).items() if v not in versions_before}
    assert list(new.values()) == ["2013-02"]
