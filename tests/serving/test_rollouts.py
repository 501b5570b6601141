"""Rollouts on a real gateway under real load: canary analysis, pause, blue-green, shadow.

Every test runs a load generator against its own deployment while the rollout happens and then
checks that no client request failed and that traffic ended where the rollout says it is.
"""

from __future__ import annotations

import time

import pytest

from conveyor.clients.gateway import GatewayClient, GatewayClientError
from conveyor.local.gateway import GatewayServer
from conveyor.local.loadgen import BackgroundLoad, Outcome
from tests.serving.conftest import ServingModels

pytestmark = pytest.mark.integration

FAST = {"interval_s": 2.0, "count": 2, "min_requests": 10, "latency_slack_s": 0.25}


def _version(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


def _failed(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if not o.ok]


def _load(gateway: GatewayServer, name: str, bodies: list[bytes], **kwargs) -> BackgroundLoad:
    return BackgroundLoad(
        gateway.url, bodies, concurrency=4, path=f"/deployments/{name}/invocations", **kwargs
    )


def _after_settled(load: BackgroundLoad, seconds: float = 1.0) -> float:
    """Mark now, let the load run on, return the mark: requests sent later show the final routing."""
    mark = time.monotonic()
    count = len(load.outcomes)
    load.wait_for(count + 20, timeout=seconds + 30)
    return mark


def test_canary_whose_analysis_fails_rolls_back_with_zero_failed_requests(
    gateway: GatewayServer,
    admin: GatewayClient,
    fresh: str,
    serving_models: ServingModels,
    bodies: list[bytes],
) -> None:
    stable = _version(serving_models.good)
    with _load(gateway, fresh, bodies, key_header="x-conveyor-key") as load:
        load.wait_for(20)
        admin.start_rollout(
            fresh, {"model_uri": serving_models.shuffled, "steps": [20, 50, 100], "analysis": FAST}
        )
        rollout = admin.wait_rollout(fresh, timeout=90, poll_s=0.2)
        mark = _after_settled(load)
    assert rollout["state"] == "rolled_back"
    assert "automatic rollback, analysis failed" in rollout["transitions"][-1]["reason"]
    assert "prediction distribution shift" in rollout["transitions"][-1]["reason"]
    assert [t["to"] for t in rollout["transitions"]] == ["loading", "progressing", "rolled_back"]
    assert _failed(load.outcomes) == []
    canary_answers = [o for o in load.outcomes if o.slot == "canary"]
    assert canary_answers and {o.version for o in canary_answers} == {_version(serving_models.shuffled)}
    assert {(o.slot, o.version) for o in load.outcomes if o.sent > mark} == {("stable", stable)}
    deployment = admin.deployment(fresh)
    assert "canary" not in deployment["slots"] and deployment["canary_weight"] == 0


def test_failing_canary_never_fails_a_client_and_is_rolled_back_for_its_errors(
    gateway: GatewayServer,
    admin: GatewayClient,
    fresh: str,
    serving_models: ServingModels,
    bodies: list[bytes],
) -> None:
    with _load(gateway, fresh, bodies) as load:
        load.wait_for(20)
        admin.start_rollout(fresh, {"model_uri": serving_models.failing, "steps": [50], "analysis": FAST})
        rollout = admin.wait_rollout(fresh, timeout=90, poll_s=0.2)
    assert rollout["state"] == "rolled_back"
    last = rollout["analysis"][-1]
    error_check = next(c for c in last["checks"] if c["name"] == "error_rate")
    assert error_check["passed"] is False and error_check["value"] == 1.0
    assert _failed(load.outcomes) == []
    assert {o.slot for o in load.outcomes} == {"stable"}  # stable answered every canary failure


@pytest.mark.parametrize("staged", [False, True], ids=["fresh", "staged-first"])
def test_healthy_canary_proceeds_step_by_step_and_is_promoted(
    gateway: GatewayServer,
    admin: GatewayClient,
    fresh: str,
    serving_models: ServingModels,
    bodies: list[bytes],
    staged: bool,
) -> None:
    """Also for a version ml_cd smoke-tested in staging first: staging and canary then hold the
    same loaded version, and the canary is judged on its own traffic, not staging's."""
    new = _version(serving_models.good_too)
    analysis = FAST
    if staged:
        admin.deploy_slot(fresh, serving_models.good_too, slot="staging")
    with _load(gateway, fresh, bodies) as load:
        load.wait_for(20)
        admin.start_rollout(
            fresh, {"model_uri": serving_models.good_too, "steps": [25, 50, 100], "analysis": analysis}
        )
        rollout = admin.wait_rollout(fresh, timeout=120, poll_s=0.2)
        mark = _after_settled(load)
    assert rollout["state"] == "succeeded", rollout["transitions"][-1]
    weights = [t["canary_weight"] for t in rollout["transitions"] if t["to"] == "progressing"]
    assert weights == [25, 50]
    assert "promoted to stable" in rollout["transitions"][-1]["reason"]
    assert _failed(load.outcomes) == []
    assert {(o.slot, o.version) for o in load.outcomes if o.sent > mark} == {("stable", new)}
    deployment = admin.deployment(fresh)
    assert deployment["previous"]["model_version"] == _version(serving_models.good)  # kept warm


def test_inconclusive_analysis_pauses_for_a_person(
    admin: GatewayClient, fresh: str, serving_models: ServingModels
) -> None:
    starved = {**FAST, "interval_s": 0.5, "count": 1, "min_requests": 10**6}
    admin.start_rollout(
        fresh, {"model_uri": serving_models.good_too, "steps": [10, 100], "analysis": starved}
    )
    rollout = admin.wait_rollout(fresh, timeout=60, poll_s=0.2)
    assert rollout["state"] == "paused"
    assert "fewer than min_requests" in rollout["transitions"][-1]["reason"]
    assert admin.deployment(fresh)["canary_weight"] == 10  # the canary keeps its share while paused
    with pytest.raises(GatewayClientError, match="has a paused rollout"):
        admin.deploy_slot(fresh, serving_models.good, slot="canary")
    admin.rollout_action(fresh, "resume")
    assert admin.wait_rollout(fresh, timeout=60, poll_s=0.2)["state"] == "paused"
    promoted = admin.rollout_action(fresh, "promote")
    assert promoted["state"] == "succeeded"
    assert [t["to"] for t in promoted["transitions"]][-4:] == ["paused", "progressing", "paused", "succeeded"]
    assert admin.deployment(fresh)["slots"]["stable"]["model_version"] == _version(serving_models.good_too)
    with pytest.raises(GatewayClientError, match="only a paused rollout can resume"):
        admin.rollout_action(fresh, "resume")


def test_blue_green_switch_and_rollback_lose_no_request(
    gateway: GatewayServer,
    admin: GatewayClient,
    fresh: str,
    serving_models: ServingModels,
    bodies: list[bytes],
) -> None:
    old, new = _version(serving_models.good), _version(serving_models.good_too)
    with _load(gateway, fresh, bodies) as load:
        load.wait_for(20)
        admin.start_rollout(fresh, {"model_uri": serving_models.good_too, "strategy": "blue_green"})
        assert admin.wait_rollout(fresh, timeout=60, poll_s=0.1)["state"] == "switched"
        switched = _after_settled(load)
        before_rollback = time.monotonic()
        rolled = admin.rollout_action(fresh, "rollback")
        back = _after_settled(load)
    assert rolled["state"] == "rolled_back"
    assert _failed(load.outcomes) == []
    # answered before the rollback call began: certainly served between switch and rollback
    window = [o for o in load.outcomes if switched < o.sent and o.sent + o.latency_s < before_rollback]
    assert {o.version for o in window} == {new}, [(round(o.sent - switched, 4), o.version) for o in window]
    assert {o.version for o in load.outcomes if o.sent > back} == {old}


def test_shadow_errors_never_reach_the_client_and_agreement_is_recorded(
    gateway: GatewayServer,
    admin: GatewayClient,
    fresh: str,
    serving_models: ServingModels,
    bodies: list[bytes],
) -> None:
    stable = _version(serving_models.good)
    with _load(gateway, fresh, bodies) as load:
        load.wait_for(20)
        admin.start_rollout(
            fresh, {"model_uri": serving_models.failing, "strategy": "shadow", "shadow_fraction": 1.0}
        )
        broken = admin.wait_rollout(fresh, timeout=60, poll_s=0.2)
        errors = admin.deployment(fresh)["shadow"]["errors"]
        admin.start_rollout(
            fresh,
            {
                "model_uri": serving_models.good_too,
                "strategy": "shadow",
                "shadow_fraction": 0.5,
                "analysis": FAST,
            },
        )
        healthy = admin.wait_rollout(fresh, timeout=60, poll_s=0.2)
    assert broken["state"] == "rolled_back" and errors > 0
    assert healthy["state"] == "succeeded", healthy["transitions"][-1]
    assert "shadow comparison complete" in healthy["transitions"][-1]["reason"]
    assert _failed(load.outcomes) == []
    assert {(o.slot, o.version) for o in load.outcomes} == {("stable", stable)}  # never a shadow answer
    shadow = admin.deployment(fresh)["shadow"]
    assert shadow["compared_rows"] > 0 and 0.5 <= shadow["agreement"] <= 1.0
