"""One ``conveyor serve`` on its embedded SQLite store: a restart mid-canary forgets nothing, and
two admin writes racing on one generation get one success and one 409."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from conveyor.clients.gateway import GatewayClient
from conveyor.local.gateway import GatewayServer
from conveyor.local.loadgen import BackgroundLoad
from conveyor.local.mlflow_server import MlflowServer
from tests.serving.conftest import ServingModels

pytestmark = pytest.mark.integration

STEP = {"interval_s": 3.0, "count": 2, "min_requests": 5, "latency_slack_s": 0.25, "max_score_shift": None}


def _version(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_restart_mid_canary_keeps_the_versions_and_the_rollout_goes_on(
    sig: signal.Signals,
    mlflow_server: MlflowServer,
    serving_models: ServingModels,
    bodies: list[bytes],
    tmp_path: Path,
) -> None:
    server = GatewayServer(
        root=tmp_path, tracking_uri=mlflow_server.url, deployments={"flights": serving_models.good}
    )
    server.start()
    load = BackgroundLoad(server.url, bodies, concurrency=2, path="/deployments/flights/invocations")
    try:
        with server.client() as admin, load:
            admin.start_rollout(
                "flights", {"model_uri": serving_models.good_too, "steps": [20, 50, 100], "analysis": STEP}
            )
            deadline = time.monotonic() + 60
            while admin.deployment("flights")["canary_weight"] != 20:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            time.sleep(1.0)  # mid-step: the canary has answered, its first measurement is not due
            before = admin.deployment("flights")
            os.killpg(server.proc.pid, sig)
            server.proc.wait(timeout=20)
            server.proc = None
            server.start()
            restarted = time.monotonic()
            after = admin.deployment("flights")
            rollout = admin.wait_rollout("flights", timeout=120, poll_s=0.2)
        # the same versions served after the restart, at the same weight, with the whole history
        assert {s: v["model_version"] for s, v in after["slots"].items()} == {
            "stable": _version(serving_models.good),
            "canary": _version(serving_models.good_too),
        }
        assert after["canary_weight"] == 20
        assert after["rollout"]["transitions"] == before["rollout"]["transitions"]
        assert rollout["state"] == "succeeded", rollout["transitions"]
        assert [t["canary_weight"] for t in rollout["transitions"] if t["to"] == "progressing"] == [20, 50]
        kept = before["rollout"]["transitions"]
        assert rollout["transitions"][: len(kept)] == kept
        # after the restart the canary answered again, before the rollout made it stable
        answered = {(o.slot, o.version) for o in load.outcomes if o.ok and o.sent > restarted}
        assert ("canary", _version(serving_models.good_too)) in answered
    finally:
        server.stop()


def test_two_admin_writes_on_one_generation_get_one_success_and_one_409(
    gateway: GatewayServer, admin: GatewayClient, serving_models: ServingModels, fresh: str
) -> None:
    admin.deploy_slot(fresh, serving_models.good_too, slot="canary")
    generation = admin.deployment(fresh)["generation"]
    headers = {"authorization": f"Bearer {gateway.token}", "if-match": str(generation)}

    def put(weight: int) -> httpx.Response:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            return http.put(f"/admin/deployments/{fresh}/weights", json={"canary": weight}, headers=headers)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(put, [30, 70]))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 409], [a.text for a in answers]
    winner = next(a for a in answers if a.status_code == 200).json()
    loser = next(a for a in answers if a.status_code == 409).json()
    assert loser["error_code"] == "INVALID_STATE" and "nothing was changed" in loser["message"]
    now = admin.deployment(fresh)
    assert now["canary_weight"] == winner["canary_weight"] and now["generation"] == generation + 1
    # a write on a generation that moved on is refused whatever it asks for
    stale = httpx.put(
        f"{gateway.url}/admin/deployments/{fresh}/weights", json={"canary": 5}, headers=headers, timeout=30
    )
    assert stale.status_code == 409
    assert admin.deployment(fresh)["canary_weight"] == winner["canary_weight"]
