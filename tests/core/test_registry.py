"""Promotion, rollback and history against a real ``mlflow server``.

Versions here carry no model files: the registry logic only reads gate tags and moves aliases,
and the gate decisions are recorded with the real ``record_decision`` from ``decide``.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from mlflow import MlflowClient

from conveyor.core import registry
from conveyor.core.gate import decide, record_decision, rules_from_mapping
from conveyor.core.registry import ConcurrentPromotionError, GateNotPassedError, RegistryError

RULES = rules_from_mapping({"roc_auc": {"threshold": 0.6}})


@pytest.fixture
def client(mlflow_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)


def _model(client: MlflowClient, gates: list[str]) -> str:
    """A fresh registered model with one version per gate outcome (passed/rejected/forced/none)."""
    name = f"reg-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    experiment = client.create_experiment(name)
    for i, outcome in enumerate(gates, start=1):
        run = client.create_run(experiment)
        mv = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        assert mv.version == str(i)
        if outcome == "none":
            continue
        auc = 0.5 if outcome in ("rejected", "forced") else 0.7
        decision = decide(
            RULES,
            {"roc_auc": auc},
            None,
            model_name=name,
            candidate_version=mv.version,
            candidate_run_id=run.info.run_id,
            force_reason="incident 42" if outcome == "forced" else None,
            forced_by="alice",
        )
        assert decision.status == outcome
        record_decision(client, decision)
    return name


def _champion(client: MlflowClient, name: str) -> str | None:
    return registry.current_version(client, name)


def test_gate_tags_land_on_run_and_version(client: MlflowClient) -> None:
    name = _model(client, ["rejected"])
    mv = client.get_model_version(name, "1")
    run = client.get_run(mv.run_id)
    assert mv.tags["conveyor.gate.status"] == "rejected" == run.data.tags["conveyor.gate.status"]
    assert "roc_auc: below threshold" in run.data.tags["conveyor.gate.reason"]
    assert "gate_decision.json" in [a.path.split("/")[-1] for a in client.list_artifacts(mv.run_id, "gate")]


def test_first_promotion_sets_champion_and_history(client: MlflowClient) -> None:
    name = _model(client, ["passed"])
    entry = registry.promote(client, name, "1", reason="first model", actor="ci", expected_champion=None)
    assert _champion(client, name) == "1"
    assert (entry.seq, entry.version, entry.previous_version, entry.gate_status) == (1, "1", None, "passed")
    assert registry.history(client, name) == [entry]
    tags = client.get_registered_model(name).tags
    assert registry.HistoryEntry.from_json(tags["conveyor.history.000001"]) == entry
    assert tags["conveyor.ledger_run_id"] == registry._read(client, name, "champion").ledger


@pytest.mark.parametrize("gate", ["rejected", "none"])
def test_version_without_passed_gate_is_not_promoted(client: MlflowClient, gate: str) -> None:
    name = _model(client, ["passed", gate])
    registry.promote(client, name, "1", reason="first", actor="ci", expected_champion=None)
    expected = "rejected" if gate == "rejected" else "missing"
    with pytest.raises(GateNotPassedError, match=f"v2 cannot be promoted: its gate status is {expected}"):
        registry.promote(client, name, "2", reason="try", actor="ci", expected_champion="1")
    assert _champion(client, name) == "1" and len(registry.history(client, name)) == 1


def test_forced_gate_is_promotable_and_audited(client: MlflowClient) -> None:
    name = _model(client, ["forced"])
    entry = registry.promote(client, name, "1", reason="hotfix", actor="alice", expected_champion=None)
    assert entry.gate_status == "forced"
    reason = client.get_model_version(name, "1").tags["conveyor.gate.reason"]
    assert reason.startswith("forced by alice: incident 42 (gate verdict was rejected")


def test_stale_expected_champion_is_refused(client: MlflowClient) -> None:
    name = _model(client, ["passed", "passed", "passed"])
    registry.promote(client, name, "1", reason="r", actor="ci", expected_champion=None)
    registry.promote(client, name, "2", reason="r", actor="ci", expected_champion="1")
    with pytest.raises(ConcurrentPromotionError, match="is v2 but this promotion expected v1"):
        registry.promote(client, name, "3", reason="r", actor="ci", expected_champion="1")
    assert _champion(client, name) == "2" and len(registry.history(client, name)) == 2


def test_re_promoting_the_champion_is_a_no_op(client: MlflowClient) -> None:
    name = _model(client, ["passed"])
    first = registry.promote(client, name, "1", reason="r", actor="ci", expected_champion=None, key="t1")
    again = registry.promote(client, name, "1", reason="r", actor="ci", expected_champion=None, key="t1")
    assert again == first and len(registry.history(client, name)) == 1


@pytest.mark.parametrize(("reason", "actor"), [("", "ci"), ("  ", "ci"), ("why", "")])
def test_reason_and_actor_are_required(client: MlflowClient, reason: str, actor: str) -> None:
    name = _model(client, ["passed"])
    with pytest.raises(RegistryError, match="is required"):
        registry.promote(client, name, "1", reason=reason, actor=actor, expected_champion=None)
    assert _champion(client, name) is None


def test_two_concurrent_promotions_exactly_one_wins(client: MlflowClient, mlflow_uri: str) -> None:
    name = _model(client, ["passed", "passed", "passed"])
    registry.promote(client, name, "1", reason="r", actor="ci", expected_champion=None)
    registry.history(client, name)  # ledger exists, so both threads race for the same slot
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def attempt(version: str) -> None:
        own = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
        barrier.wait()
        try:
            results[version] = registry.promote(
                own, name, version, reason="race", actor=f"t{version}", expected_champion="1"
            )
        except ConcurrentPromotionError as exc:
            results[version] = exc

    threads = [threading.Thread(target=attempt, args=(v,)) for v in ("2", "3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [v for v, r in results.items() if isinstance(r, registry.HistoryEntry)]
    losers = [r for r in results.values() if isinstance(r, ConcurrentPromotionError)]
    assert len(winners) == 1 and len(losers) == 1, results
    # The loser may read before, during or after the winner's two writes (ledger slot, then alias):
    # whichever it saw, it is told which version won and nothing of its own was applied.
    assert f"to v{winners[0]}" in str(losers[0]) or f"is v{winners[0]} but" in str(losers[0]), losers[0]
    assert _champion(client, name) == winners[0]
    entries = registry.history(client, name)
    assert [e.version for e in entries] == ["1", winners[0]]


def test_a_history_slot_can_be_written_only_once(client: MlflowClient) -> None:
    """The compare-and-set itself: the second writer of entry N is told who won it."""
    name = _model(client, ["passed", "passed"])
    ledger = registry._ledger_run_id(client, name)
    first = registry._new_entry([], "promote", name, "champion", "1", None, reason="a", actor="alice")
    second = registry._new_entry([], "promote", name, "champion", "2", None, reason="b", actor="bob")
    registry._append(client, ledger, first)
    with pytest.raises(ConcurrentPromotionError, match="written first by alice \\(promote to v1"):
        registry._append(client, ledger, second)
    assert registry.history(client, name) == [first]


def test_interrupted_promotion_is_completed_by_its_retry_and_blocks_others(client: MlflowClient) -> None:
    name = _model(client, ["passed", "passed"])
    ledger = registry._ledger_run_id(client, name)
    entry = registry._new_entry([], "promote", name, "champion", "1", None, reason="crash", actor="ci")
    registry._append(client, ledger, entry)  # the process died before moving the alias
    with pytest.raises(ConcurrentPromotionError, match="in progress or was interrupted"):
        registry.promote(client, name, "2", reason="r", actor="ci", expected_champion=None)
    assert _champion(client, name) is None
    assert registry.promote(client, name, "1", reason="crash", actor="ci", expected_champion=None) == entry
    assert _champion(client, name) == "1"


def test_rollback_walks_back_one_champion_per_step(client: MlflowClient) -> None:
    name = _model(client, ["passed", "passed", "passed"])
    for version, previous in (("1", None), ("2", "1"), ("3", "2")):
        registry.promote(client, name, version, reason="r", actor="ci", expected_champion=previous)
    back = registry.rollback(client, name, reason="error rate 5%", actor="oncall")
    assert (back.action, back.version, back.previous_version) == ("rollback", "2", "3")
    assert _champion(client, name) == "2"
    assert "error rate 5%" in client.get_model_version(name, "3").tags["conveyor.rolled_back"]
    registry.rollback(client, name, reason="still bad", actor="oncall")
    assert _champion(client, name) == "1"
    with pytest.raises(RegistryError, match="first champion in the history"):
        registry.rollback(client, name, reason="again", actor="oncall")
    assert _champion(client, name) == "1"
    assert [(e.action, e.version) for e in registry.history(client, name)] == [
        ("promote", "1"),
        ("promote", "2"),
        ("promote", "3"),
        ("rollback", "2"),
        ("rollback", "1"),
    ]


def test_retried_rollback_with_same_key_rolls_back_once(client: MlflowClient) -> None:
    name = _model(client, ["passed", "passed", "passed"])
    for version, previous in (("1", None), ("2", "1"), ("3", "2")):
        registry.promote(client, name, version, reason="r", actor="ci", expected_champion=previous)
    first = registry.rollback(client, name, reason="bad", actor="ci", key="dag/run/rollback")
    again = registry.rollback(client, name, reason="bad", actor="ci", key="dag/run/rollback")
    assert again == first and _champion(client, name) == "2"


def test_rollback_without_champion_is_refused(client: MlflowClient) -> None:
    name = _model(client, ["passed"])
    with pytest.raises(RegistryError, match="has no champion: nothing to roll back"):
        registry.rollback(client, name, reason="r", actor="ci")


def test_alias_moved_outside_conveyor_is_not_guessed(client: MlflowClient) -> None:
    name = _model(client, ["passed", "passed"])
    registry.promote(client, name, "1", reason="r", actor="ci", expected_champion=None)
    client.set_registered_model_alias(name, "champion", "2")
    with pytest.raises(ConcurrentPromotionError):
        registry.rollback(client, name, reason="r", actor="ci")
    assert _champion(client, name) == "2"
