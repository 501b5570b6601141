"""Three gateway replicas on one PostgreSQL store, one controller, nginx in front: real processes.

Every rollout is started through nginx (any replica takes the admin call), driven by the
controller process, and judged on the samples all replicas flushed to the store. Load runs
through nginx the whole time and no client request may fail, even when a replica or the
controller is SIGKILLed mid-canary.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from conveyor.clients.gateway import GatewayClient, arrived
from conveyor.local.cluster import ControllerProcess, GatewayCluster
from conveyor.local.loadgen import BackgroundLoad, Outcome
from conveyor.local.mlflow_server import MlflowServer
from conveyor.local.postgres import LocalPostgres
from conveyor.serving.controller import REPLICA_FRESH_S
from conveyor.serving.store import StateStore
from tests.serving.conftest import ServingModels

pytestmark = pytest.mark.integration

STEP = {"interval_s": 2.0, "count": 3, "min_requests": 20, "latency_slack_s": 0.25, "max_score_shift": None}


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    server = LocalPostgres(tmp_path_factory.mktemp("pg") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(
    postgres: LocalPostgres, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayCluster]:
    postgres.create_database("gateway_store")
    with GatewayCluster(
        root=tmp_path_factory.mktemp("cluster"),
        tracking_uri=mlflow_server.url,
        store_url=postgres.sqlalchemy_url("gateway_store"),
        replicas=3,
    ) as running:
        yield running


@pytest.fixture
def admin(cluster: GatewayCluster) -> Iterator[GatewayClient]:
    with cluster.client() as client:
        yield client


@pytest.fixture
def fresh(admin: GatewayClient, cluster: GatewayCluster, serving_models: ServingModels) -> str:
    """A deployment of its own, created through nginx and loaded by every replica."""
    name = f"dep-{uuid.uuid4().hex[:8]}"
    admin.deploy_slot(name, serving_models.good)
    _converged(cluster, name)
    return name


def _converged(cluster: GatewayCluster, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for server in cluster.servers:
        with server.client() as client:
            while not client.deployment(name)["slots"]["stable"]["loaded"]:
                assert time.monotonic() < deadline, f"replica {server.replica_id} never loaded {name}"
                time.sleep(0.1)


def _load(cluster: GatewayCluster, name: str, bodies: list[bytes]) -> BackgroundLoad:
    return BackgroundLoad(cluster.url, bodies, concurrency=6, path=f"/deployments/{name}/invocations")


def _canary_share(outcomes: list[Outcome], start: float, end: float) -> tuple[float, int]:
    window = [o for o in outcomes if start <= o.sent < end and o.ok]
    return 100 * sum(o.slot == "canary" for o in window) / max(len(window), 1), len(window)


def _replicas_sampled(postgres: LocalPostgres, name: str) -> set[str]:
    engine = sa.create_engine(postgres.sqlalchemy_url("gateway_store"))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT DISTINCT replica FROM conveyor_samples WHERE deployment = :d"), {"d": name}
        )
        found = {r[0] for r in rows}
    engine.dispose()
    return found


def test_a_state_counts_as_reached_only_once_every_live_replica_serves_it(
    admin: GatewayClient, cluster: GatewayCluster, fresh: str
) -> None:
    """The store holds a state before replicas apply it: a replica still on an older generation
    holds ``converged`` back (so ``wait_rollout`` waits for it), and one that stops reporting is
    no longer waited for."""
    deadline = time.monotonic() + 10
    while not (described := admin.deployment(fresh))["converged"]:  # until every heartbeat says so
        assert time.monotonic() < deadline, described["replicas"]
        time.sleep(0.1)
    assert set(described["replicas"]) == {server.replica_id for server in cluster.servers}
    laggard = StateStore(cluster.store_url)
    try:
        laggard.heartbeat("laggard", {"generations": {fresh: described["generation"] - 1}})
        behind = admin.deployment(fresh)
        assert behind["converged"] is False and behind["replicas"]["laggard"] == described["generation"] - 1
        assert not arrived({**behind, "rollout": {"state": "succeeded"}}, ("succeeded",))
        time.sleep(REPLICA_FRESH_S + 0.5)  # it stopped reporting: presumed gone
        assert admin.deployment(fresh)["converged"] is True
    finally:
        laggard.forget_replica("laggard")
        laggard.close()


def test_canary_steps_split_traffic_across_all_replicas_and_complete(
    cluster: GatewayCluster,
    admin: GatewayClient,
    fresh: str,
    serving_models: ServingModels,
    bodies: list[bytes],
    postgres: LocalPostgres,
) -> None:
    with _load(cluster, fresh, bodies) as load:
        load.wait_for(50)
        started = time.monotonic()
        wall_started = time.time()
        admin.start_rollout(
            fresh, {"model_uri": serving_models.good_too, "steps": [10, 50, 100], "analysis": STEP}
        )
        rollout = admin.wait_rollout(fresh, timeout=120, poll_s=0.2)
    assert rollout["state"] == "succeeded", rollout["transitions"]
    assert [t["to"] for t in rollout["transitions"]] == ["loading", "progressing", "progressing", "succeeded"]
    assert [o for o in load.outcomes if not o.ok] == []
    # Each step's share of canary answers, measured by the client over the step's whole window.
    wall_to_mono = started - wall_started
    steps = [t for t in rollout["transitions"] if t["to"] == "progressing"]
    ends = [*rollout["transitions"][2:]]
    for step, end in zip(steps, ends, strict=True):
        begin = _at(step) + wall_to_mono + 0.3  # every replica applies a step within one poll
        finish = _at(end) + wall_to_mono
        share, n = _canary_share(load.outcomes, begin, finish)
        assert n >= 300, f"too few requests ({n}) in the {step['canary_weight']}% step to judge the split"
        assert abs(share - step["canary_weight"]) <= 3, (step["canary_weight"], share, n)
    assert _replicas_sampled(postgres, fresh) == {f"replica-{i}" for i in range(3)}
    deployment = admin.deployment(fresh)
    assert deployment["slots"]["stable"]["model_version"] == serving_models.good_too.rsplit("/", 1)[1]


def _at(transition: dict) -> float:
    from datetime import datetime

    return datetime.fromisoformat(transition["at"]).timestamp()


def test_a_failing_canary_is_rolled_back_on_errors_counted_over_all_replicas(
    cluster: GatewayCluster,
    admin: GatewayClient,
    fresh: str,
    serving_models: ServingModels,
    bodies: list[bytes],
    postgres: LocalPostgres,
) -> None:
    with _load(cluster, fresh, bodies) as load:
        load.wait_for(50)
        admin.start_rollout(
            fresh, {"model_uri": serving_models.failing, "steps": [20, 100], "analysis": STEP}
        )
        rollout = admin.wait_rollout(fresh, timeout=90, poll_s=0.2)
    assert rollout["state"] == "rolled_back", rollout["transitions"]
    assert "canary error rate" in rollout["transitions"][-1]["reason"]
    assert [o for o in load.outcomes if not o.ok] == []  # stable answered for the failing canary
    assert _replicas_sampled(postgres, fresh) == {f"replica-{i}" for i in range(3)}
    for server in cluster.servers:
        with server.client() as client:
            assert "canary" not in client.deployment(fresh)["slots"]


def test_sigkill_of_a_replica_mid_canary_fails_no_client_request_and_the_rollout_finishes(
    cluster: GatewayCluster,
    admin: GatewayClient,
    fresh: str,
    serving_models: ServingModels,
    bodies: list[bytes],
) -> None:
    victim = cluster.servers[-1]
    with _load(cluster, fresh, bodies) as load:
        load.wait_for(50)
        admin.start_rollout(
            fresh, {"model_uri": serving_models.good_too, "steps": [20, 50, 100], "analysis": STEP}
        )
        _wait_state(admin, fresh, "progressing")
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(timeout=10)
        rollout = admin.wait_rollout(fresh, timeout=120, poll_s=0.2)
    assert rollout["state"] == "succeeded", rollout["transitions"]
    failed = [o for o in load.outcomes if not o.ok]
    assert failed == [], failed[:5]
    # back to three replicas for the next test: the restarted one converges on the store's state
    victim.proc = None
    victim.start()
    _converged(cluster, fresh)
    with victim.client() as client:
        assert (
            client.deployment(fresh)["slots"]["stable"]["model_version"]
            == serving_models.good_too.rsplit("/", 1)[1]
        )


def test_sigkill_of_the_controller_mid_canary_a_standby_resumes_it(
    cluster: GatewayCluster,
    admin: GatewayClient,
    fresh: str,
    serving_models: ServingModels,
    bodies: list[bytes],
    tmp_path: Path,
) -> None:
    leader = cluster.controller
    assert leader is not None
    standby = ControllerProcess(tmp_path, cluster.store_url, cluster.tracking_uri, holder="standby").start()
    try:
        deadline = time.monotonic() + 60
        while not standby.stands_by():
            standby.check_alive()
            assert time.monotonic() < deadline, "the standby never reached the lease"
            time.sleep(0.1)
        with _load(cluster, fresh, bodies) as load:
            load.wait_for(50)
            admin.start_rollout(
                fresh, {"model_uri": serving_models.good_too, "steps": [20, 50, 100], "analysis": STEP}
            )
            _wait_state(admin, fresh, "progressing")
            assert standby.stands_by()
            os.killpg(leader.proc.pid, signal.SIGKILL)
            leader.proc.wait(timeout=10)
            rollout = admin.wait_rollout(fresh, timeout=120, poll_s=0.2)
        assert rollout["state"] == "succeeded", rollout["transitions"]
        assert standby.leads()
        assert [o for o in load.outcomes if not o.ok] == []
    finally:
        # the standby is the cluster's controller from now on
        leader.proc = None
        cluster.controller = standby


def _wait_state(admin: GatewayClient, name: str, state: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rollout = admin.deployment(name)["rollout"]
        if rollout and rollout["state"] == state:
            return rollout
        assert time.monotonic() < deadline, rollout
        time.sleep(0.1)
