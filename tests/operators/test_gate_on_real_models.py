"""``core.gate`` scoring real registered torch models on their logged evaluation set."""

from __future__ import annotations

import re
from types import ModuleType

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from conveyor.core import registry
from conveyor.core.gate import (
    REPORT_TAG,
    STATUS_TAG,
    UNSCORABLE,
    GateError,
    load_eval_set,
    rules_from_mapping,
    run_gate,
)
from conveyor.local.process import free_port
from tests.support.models import eval_frame, register_adversarial_model


def test_identical_model_is_exactly_non_inferior_at_zero_tolerance(
    client: MlflowClient, model_name: str, add_challenger
) -> None:
    champion = add_challenger("good")
    first = run_gate(client, model_name, rules_from_mapping({"roc_auc": {"threshold": 0.5}}))
    registry.promote(
        client, model_name, champion, reason="seed", actor="test", expected_champion=first.baseline_version
    )
    candidate = add_challenger("good")  # the same weights under a new version: delta is exactly 0
    rules = rules_from_mapping({"roc_auc": {"tolerance": 0.0}, "log_loss": {"tolerance": 0.0}})
    decision = run_gate(client, model_name, rules)
    assert (decision.candidate_version, decision.baseline_version) == (candidate, champion)
    assert decision.status == "passed", decision.render_table()
    assert all(c.delta == 0.0 and c.non_inferior_ok for c in decision.checks)
    assert decision.eval_rows == len(load_eval_set(client, decision.candidate_run_id))


def test_the_contracts_gate_judges_served_decisions_and_reports_the_shipped_threshold(
    client: MlflowClient, model_name: str, add_challenger
) -> None:
    champion = add_challenger("good")
    first = run_gate(client, model_name)
    registry.promote(
        client, model_name, champion, reason="seed", actor="test", expected_champion=first.baseline_version
    )
    add_challenger("worse")
    decision = run_gate(client, model_name)  # the rules of the project's conveyor.yml
    threshold = client.get_run(decision.candidate_run_id).data.params["decision_threshold"]
    champion_threshold = client.get_run(first.candidate_run_id).data.params["decision_threshold"]
    (shipped,) = decision.report
    assert (shipped.name, shipped.candidate, shipped.baseline) == (
        "decision_threshold",
        f"{float(threshold):.4g}",
        f"{float(champion_threshold):.4g}",
    )
    checks = {c.metric: c for c in decision.checks}
    assert set(checks) == {"roc_auc", "f1", "log_loss"}
    # The good model's chosen threshold makes it answer "delayed": its F1 is far from 0.
    assert checks["f1"].baseline > 0.3
    # The shuffled-label model loses on the ranking and on the probabilities.
    assert decision.status == "rejected" and not checks["roc_auc"].passed and not checks["log_loss"].passed
    tags = client.get_model_version(model_name, decision.candidate_version).tags
    assert tags[REPORT_TAG] == f"decision_threshold={shipped.candidate} (champion {shipped.baseline})"
    assert f"reported: {tags[REPORT_TAG]}" in decision.render_table()


def test_one_class_eval_set_gives_nan_auc_and_a_rejection(
    client: MlflowClient, model_name: str, add_challenger
) -> None:
    version = add_challenger("good")
    frame = load_eval_set(client, client.get_model_version(model_name, version).run_id)
    only_delayed = frame[frame["delayed"] == 1]
    decision = run_gate(
        client, model_name, rules_from_mapping({"roc_auc": {"threshold": 0.5}}), eval_set=only_delayed
    )
    assert decision.status == "rejected" and decision.reason == "roc_auc: candidate metric is NaN"
    assert decision.eval_source == "passed in"
    assert client.get_model_version(model_name, version).tags["conveyor.gate.status"] == "rejected"
    with pytest.raises(registry.GateNotPassedError):
        registry.promote(client, model_name, version, reason="try", actor="test", expected_champion=None)


def test_eval_set_without_label_is_refused(client: MlflowClient, model_name: str, add_challenger) -> None:
    version = add_challenger("good")
    frame = load_eval_set(client, client.get_model_version(model_name, version).run_id)
    with pytest.raises(GateError, match="no label column 'delayed'"):
        run_gate(
            client,
            model_name,
            rules_from_mapping({"roc_auc": {"threshold": 0.5}}),
            eval_set=frame.drop(columns="delayed"),
        )
    assert "conveyor.gate.status" not in client.get_model_version(model_name, version).tags


def test_unknown_candidate_alias_is_refused(client: MlflowClient, model_name: str, add_challenger) -> None:
    add_challenger("good")
    with pytest.raises(GateError, match="has no version for candidate 'canary'"):
        run_gate(client, model_name, rules_from_mapping({"roc_auc": {"threshold": 0.5}}), candidate="canary")


def test_gate_operator_rejects_a_candidate_that_raises_as_it_rejects_bad_metrics(
    test_dags: dict[str, ModuleType], mlflow_conn: str, client: MlflowClient, model_name: str
) -> None:
    version = register_adversarial_model(mlflow_conn, model_name, "raise_on_predict", eval_frame().head(200))
    dr = test_dags["gate_promote_rollback"].gate_promote.test(run_conf={"model_name": model_name})
    assert {ti.task_id: str(ti.state) for ti in dr.get_task_instances()} == {
        "model_gate": "failed",
        "promote": "upstream_failed",
    }
    tags = client.get_model_version(model_name, version.version).tags
    assert tags[STATUS_TAG] == "rejected"
    assert tags["conveyor.gate.reason"] == (
        f"{UNSCORABLE}: {model_name} v{version.version} raised on predict: "
        "RuntimeError: this model version is broken at prediction time"
    )
    assert registry.current_version(client, model_name) is None


def test_unreachable_mlflow_is_an_error_not_a_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MlflowException, match=re.escape(dead)):
        run_gate(MlflowClient(dead, dead), "flights", rules_from_mapping({"roc_auc": {"threshold": 0.5}}))
