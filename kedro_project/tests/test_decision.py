"""The decision threshold: each objective picks what it promises, and bad settings are named."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_score, recall_score

from flight_delays.decision import ThresholdConfigError, ThresholdPolicy, choose_threshold

# Validation rows with both classes; probabilities on a coarse grid, so ties are common.
rows = st.integers(4, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda y: 0 < sum(y) < len(y)),
        st.lists(st.integers(0, 20).map(lambda k: k / 20), min_size=n, max_size=n),
    )
)


def _at(labels: np.ndarray, proba: np.ndarray, t: float) -> tuple[float, float, float]:
    decided = proba >= t
    return (
        precision_score(labels, decided, zero_division=0),
        recall_score(labels, decided, zero_division=0),
        f1_score(labels, decided, zero_division=0),
    )


@settings(max_examples=200, deadline=None)
@given(data=rows)
def test_f1_objective_picks_a_threshold_no_other_beats(data) -> None:
    labels, proba = np.array(data[0]), np.array(data[1])
    choice = choose_threshold(labels, proba, ThresholdPolicy())
    assert choice.threshold in proba
    best = max(_at(labels, proba, t)[2] for t in np.unique(proba))
    assert choice.f1 == pytest.approx(best) == pytest.approx(_at(labels, proba, choice.threshold)[2])


@settings(max_examples=200, deadline=None)
@given(data=rows)
def test_balanced_accuracy_objective_picks_a_threshold_no_other_beats(data) -> None:
    labels, proba = np.array(data[0]), np.array(data[1])
    choice = choose_threshold(labels, proba, ThresholdPolicy("balanced_accuracy"))
    assert choice.threshold in proba
    scores = {t: balanced_accuracy_score(labels, proba >= t) for t in np.unique(proba)}
    assert scores[choice.threshold] == pytest.approx(max(scores.values()))


@settings(max_examples=200, deadline=None)
@given(data=rows, target=st.floats(0.05, 1.0))
def test_precision_target_gives_the_most_recall_that_reaches_it(data, target) -> None:
    labels, proba = np.array(data[0]), np.array(data[1])
    choice = choose_threshold(labels, proba, ThresholdPolicy("precision", target))
    scores = {t: _at(labels, proba, t) for t in np.unique(proba)}
    reaching = [t for t, (p, _, _) in scores.items() if p >= target]
    assert choice.target_met == bool(reaching)
    if reaching:
        assert choice.threshold == min(reaching)
        assert choice.precision >= target
    else:
        assert choice.precision == pytest.approx(max(p for p, _, _ in scores.values()))


@settings(max_examples=200, deadline=None)
@given(data=rows, target=st.floats(0.01, 1.0))
def test_recall_target_gives_the_highest_threshold_that_reaches_it(data, target) -> None:
    labels, proba = np.array(data[0]), np.array(data[1])
    choice = choose_threshold(labels, proba, ThresholdPolicy("recall", target))
    reaching = [t for t in np.unique(proba) if _at(labels, proba, t)[1] >= target]
    assert choice.threshold == max(reaching) and choice.recall >= target and choice.target_met


def test_a_fixed_threshold_is_kept_with_what_it_gives() -> None:
    labels, proba = np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.4, 0.6])
    choice = choose_threshold(labels, proba, ThresholdPolicy(fixed=0.5))
    assert (choice.threshold, choice.precision, choice.recall) == (0.5, 0.5, 0.5)
    assert choice.rule == "fixed by training.decision_threshold"


def test_one_class_validation_rows_cannot_choose() -> None:
    with pytest.raises(ValueError, match=r"only one class .* training\.decision_threshold"):
        choose_threshold(np.zeros(5), np.linspace(0, 1, 5), ThresholdPolicy())


@pytest.mark.parametrize(
    ("params", "policy"),
    [
        ({}, ThresholdPolicy("f1")),
        ({"threshold": None, "decision_threshold": None}, ThresholdPolicy("f1")),
        ({"threshold": {"objective": "precision", "target": 0.6}}, ThresholdPolicy("precision", 0.6)),
        ({"threshold": {"objective": "recall", "target": 1}}, ThresholdPolicy("recall", 1.0)),
        ({"decision_threshold": 0}, ThresholdPolicy("f1", None, 0.0)),
    ],
)
def test_settings_read(params, policy) -> None:
    assert ThresholdPolicy.from_params(params) == policy


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": "f1"}, "must be a mapping such as {objective: f1}"),
        ({"threshold": {"objective": "f1", "tagret": 0.5}}, r"unknown key\(s\) \['tagret'\]"),
        (
            {"threshold": {"objective": "auc"}},
            "objective must be one of f1, balanced_accuracy, precision, recall, got 'auc'",
        ),
        ({"threshold": {"objective": "f1", "target": 0.5}}, "f1 has no target"),
        ({"threshold": {"objective": "precision"}}, "objective precision needs a target in"),
        ({"threshold": {"objective": "recall", "target": 0}}, "target must be above 0"),
        ({"threshold": {"objective": "recall", "target": 1.2}}, r"target must be in \[0, 1\], got 1.2"),
        ({"threshold": {"objective": "precision", "target": "high"}}, "target must be a number"),
        ({"decision_threshold": True}, "decision_threshold must be a number in"),
        ({"decision_threshold": float("nan")}, "decision_threshold must be a number in"),
    ],
)
def test_bad_settings_are_named(params, message) -> None:
    with pytest.raises(ThresholdConfigError, match=message):
        ThresholdPolicy.from_params(params)


_anything = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: st.dictionaries(st.text(max_size=10), inner, max_size=3) | st.lists(inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    threshold=st.one_of(
        _anything,
        st.fixed_dictionaries(
            {},
            optional={
                "objective": st.sampled_from(["f1", "balanced_accuracy", "precision", "recall", "x"]),
                "target": _anything,
            },
        ),
    ),
    fixed=_anything,
)
def test_any_setting_is_a_valid_policy_or_a_named_refusal(threshold, fixed) -> None:
    try:
        policy = ThresholdPolicy.from_params({"threshold": threshold, "decision_threshold": fixed})
    except ThresholdConfigError as exc:
        assert "training." in str(exc)
        return
    assert policy.objective in ("f1", "balanced_accuracy", "precision", "recall")
    assert policy.fixed is None or 0 <= policy.fixed <= 1
    assert (policy.target is None) == (policy.objective in ("f1", "balanced_accuracy"))
