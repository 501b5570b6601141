"""The gate's decision rules on metrics given directly: every edge case without training a model."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conveyor.core.gate import (
    UNSCORABLE,
    GateDecision,
    GateError,
    MetricRule,
    Reported,
    decide,
    rules_from_mapping,
    unscorable,
)
from conveyor.core.scoring import binary_metrics

AUC_RULE = {"roc_auc": {"threshold": 0.6, "tolerance": 0.005}}


def _decide(candidate: dict, baseline: dict | None, spec: dict = AUC_RULE, **kw) -> GateDecision:
    return decide(rules_from_mapping(spec), candidate, baseline, model_name="m", candidate_version="2", **kw)


def test_better_candidate_passes_with_every_number_recorded() -> None:
    d = _decide({"roc_auc": 0.71}, {"roc_auc": 0.70}, baseline_version="1")
    assert d.status == "passed" and d.allows_promotion
    (check,) = d.checks
    assert check.candidate == 0.71 and check.baseline == 0.70
    assert check.delta == pytest.approx(0.01)
    assert check.threshold_ok is True and check.non_inferior_ok is True


def test_exactly_at_the_tolerance_passes() -> None:
    # 0.8 - 0.005 is 0.7950000000000000...4 in floats: the rounding must not reject.
    d = _decide({"roc_auc": 0.795}, {"roc_auc": 0.8})
    assert d.status == "passed", d.reason


def test_just_below_the_tolerance_is_rejected_with_the_margin_in_the_reason() -> None:
    d = _decide({"roc_auc": 0.7949}, {"roc_auc": 0.8})
    assert d.status == "rejected"
    assert "roc_auc: worse than champion by 0.0051 > 0.005" in d.reason
    assert d.checks[0].non_inferior_ok is False and d.checks[0].threshold_ok is True


def test_lower_is_better_metrics_use_their_direction() -> None:
    spec = {"log_loss": {"threshold": 0.6, "tolerance": 0.01}}
    assert _decide({"log_loss": 0.50}, {"log_loss": 0.49}, spec).status == "passed"
    worse = _decide({"log_loss": 0.52}, {"log_loss": 0.50}, spec)
    assert worse.status == "rejected" and "log_loss: worse than champion by 0.0200" in worse.reason
    over = _decide({"log_loss": 0.61}, None, spec)
    assert over.status == "rejected" and "above threshold" in over.reason


def test_absolute_threshold_fails_even_when_better_than_champion() -> None:
    d = _decide({"roc_auc": 0.55}, {"roc_auc": 0.50})
    assert d.status == "rejected" and "roc_auc: below threshold" in d.reason


def test_first_model_is_judged_on_absolute_thresholds_only_and_says_so() -> None:
    d = _decide({"roc_auc": 0.65}, None)
    assert d.status == "passed" and d.baseline_version is None
    assert "no champion yet: absolute thresholds only" in d.reason
    assert d.checks[0].non_inferior_ok is None and "tolerance not assessed" in d.checks[0].note


def test_first_model_rejected_when_policy_says_so() -> None:
    d = _decide({"roc_auc": 0.65}, None, no_champion="reject")
    assert d.status == "rejected" and "no_champion='reject'" in d.reason


@pytest.mark.parametrize(
    ("candidate", "baseline", "note"),
    [
        ({"roc_auc": math.nan}, {"roc_auc": 0.7}, "candidate metric is NaN"),
        ({}, {"roc_auc": 0.7}, "candidate metric missing"),
        ({"roc_auc": 0.7}, {"roc_auc": math.nan}, "champion metric is NaN"),
        ({"roc_auc": 0.7}, {}, "champion metric missing"),
    ],
)
def test_nan_or_missing_metrics_fail(candidate: dict, baseline: dict, note: str) -> None:
    d = _decide(candidate, baseline)
    assert d.status == "rejected"
    assert f"roc_auc: {note}" in d.reason


def test_forced_pass_keeps_the_failed_verdict_and_who_forced_it() -> None:
    d = _decide(
        {"roc_auc": 0.5}, {"roc_auc": 0.8}, force_reason="hotfix for schema change", forced_by="alice"
    )
    assert d.status == "forced" and d.allows_promotion and d.forced_by == "alice"
    assert d.reason.startswith("forced by alice: hotfix for schema change (gate verdict was rejected:")
    assert d.checks[0].passed is False


@pytest.mark.parametrize("reason", ["", "   "])
def test_forced_pass_without_reason_is_refused(reason: str) -> None:
    with pytest.raises(GateError, match="non-empty reason"):
        _decide({"roc_auc": 0.5}, {"roc_auc": 0.8}, force_reason=reason)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "at least one metric rule"),
        ({"mystery": {"threshold": 1.0}}, "no known direction"),
        ({"roc_auc": {}}, "neither threshold nor tolerance"),
        ({"roc_auc": {"tolerance": -0.01}}, "must be >= 0"),
        ({"roc_auc": {"treshold": 0.6}}, "unknown keys \\['treshold'\\]"),
    ],
)
def test_bad_rules_are_refused_with_a_specific_message(spec: dict, message: str) -> None:
    with pytest.raises(GateError, match=message):
        rules_from_mapping(spec)


def test_custom_metric_with_explicit_direction() -> None:
    rule = MetricRule("latency_ms", threshold=50.0, higher_is_better=False)
    d = decide([rule], {"latency_ms": 40.0}, None, model_name="m")
    assert d.status == "passed"


def test_unknown_no_champion_policy_is_refused() -> None:
    with pytest.raises(GateError, match="no_champion must be"):
        _decide({"roc_auc": 0.7}, None, no_champion="pass")


def test_json_round_trip_writes_nan_as_null() -> None:
    d = _decide({"roc_auc": math.nan}, {"roc_auc": 0.7}, baseline_version="1")
    data = json.loads(d.to_json())
    assert data["checks"][0]["candidate"] is None and data["status"] == "rejected"
    back = GateDecision.from_dict(data)
    assert back.checks[0].metric == "roc_auc" and back.gate_id == d.gate_id and back.baseline_version == "1"


def test_table_shows_every_metric_threshold_and_delta() -> None:
    spec = {"roc_auc": {"threshold": 0.6, "tolerance": 0.005}, "log_loss": {"tolerance": 0.01}}
    d = _decide(
        {"roc_auc": 0.70, "log_loss": 0.55}, {"roc_auc": 0.72, "log_loss": 0.50}, spec, baseline_version="1"
    )
    table = d.render_table()
    lines = table.splitlines()
    assert lines[0] == "Model gate m v2 vs champion v1 on ? rows"
    roc = next(line for line in lines if line.startswith("roc_auc"))
    assert "0.7000" in roc and "0.7200" in roc and "-0.0200" in roc and ">= 0.6000" in roc and "FAIL" in roc
    assert next(line for line in lines if line.startswith("log_loss")).split()[1] == "↓"
    assert lines[-1].startswith("=> REJECTED: roc_auc: worse than champion by 0.0200")


def test_reported_values_are_shown_and_survive_the_json_record() -> None:
    report = [Reported("decision_threshold", "0.01", "0.1881"), Reported("n_trees", "300", None)]
    d = _decide({"roc_auc": 0.7}, {"roc_auc": 0.7}, baseline_version="1", report=report)
    lines = d.render_table().splitlines()
    assert lines[-3:-1] == [
        "   reported: decision_threshold=0.01 (champion 0.1881)",
        "   reported: n_trees=300",
    ]
    assert lines[-1].startswith("=> PASSED")  # the verdict stays the last line
    assert d.status == "passed" and "decision_threshold" not in d.reason  # reported, never judged
    assert GateDecision.from_dict(json.loads(d.to_json())).report == report
    # A decision recorded before reports existed still reads back.
    old = json.loads(d.to_json())
    del old["report"]
    assert GateDecision.from_dict(old).report == []


def test_binary_metrics_judge_the_models_own_decisions() -> None:
    labels = pd.Series([0, 0, 0, 1, 1])
    scores = pd.Series([0.1, 0.2, 0.3, 0.35, 0.4])  # every positive below 0.5
    at_half = binary_metrics(labels, scores)
    served = binary_metrics(labels, scores, decisions=(scores >= 0.33).astype(int))
    assert (at_half["f1"], at_half["accuracy"]) == (0.0, 0.6)
    assert (served["f1"], served["accuracy"]) == (1.0, 1.0)
    assert served["roc_auc"] == at_half["roc_auc"] == 1.0


def test_binary_metrics_rank_a_perfect_model_above_a_random_one() -> None:
    rng = np.random.default_rng(0)
    labels = pd.Series(rng.integers(0, 2, 500))
    perfect = binary_metrics(labels, labels * 0.8 + 0.1)
    noise = binary_metrics(labels, pd.Series(rng.random(500)))
    assert perfect["roc_auc"] == 1.0 and perfect["accuracy"] == 1.0
    assert 0.4 < noise["roc_auc"] < 0.6
    assert perfect["log_loss"] < noise["log_loss"] and perfect["brier"] < noise["brier"]


def test_binary_metrics_give_nan_when_a_metric_is_undefined() -> None:
    one_class = binary_metrics(pd.Series([1, 1, 1]), pd.Series([0.2, 0.9, 0.7]))
    assert math.isnan(one_class["roc_auc"]) and not math.isnan(one_class["log_loss"])
    nan_pred = binary_metrics(pd.Series([0, 1]), pd.Series([0.2, float("nan")]))
    assert all(math.isnan(v) for v in nan_pred.values())


def test_an_unscorable_candidate_is_rejected_even_when_forced() -> None:
    rules = rules_from_mapping(AUC_RULE)
    d = unscorable("m v2 does not load: ValueError: bad magic", rules, model_name="m", candidate_version="2")
    assert (d.status, d.checks, d.forced_by) == ("rejected", [], None)
    assert d.reason == f"{UNSCORABLE}: m v2 does not load: ValueError: bad magic"
    forced = unscorable("m v2 raised on predict", rules, model_name="m", force_reason="ship", forced_by="bob")
    assert forced.status == "rejected" and not forced.allows_promotion
    assert forced.reason.endswith("(forced pass asked by bob not applied: ship)")
    assert GateDecision.from_dict(json.loads(forced.to_json())).reason == forced.reason
    assert forced.render_table().splitlines()[-1] == f"=> REJECTED: {forced.reason}"


def test_an_unscorable_candidate_still_needs_a_valid_request() -> None:
    with pytest.raises(GateError, match="no_champion must be"):
        unscorable("broken", rules_from_mapping(AUC_RULE), model_name="m", no_champion="pass")
    with pytest.raises(GateError, match="non-empty reason"):
        unscorable("broken", rules_from_mapping(AUC_RULE), model_name="m", force_reason=" ")
