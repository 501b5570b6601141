"""Outputs checked against the contract and each task's metrics, on small real predictions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames
from sklearn import metrics

from conveyor.core.contract import ModelContract
from conveyor.core.scoring import (
    UnscorableModelError,
    checked_outputs,
    decisions_agree,
    multiclass_metrics,
    online_aggregate,
    online_value,
    regression_metrics,
    score_outputs,
)
from tests.support import contracts

BINARY = ModelContract.from_mapping(
    {
        "model": {
            "name": "m",
            "task": "binary_classification",
            "label": "y",
            "outputs": {"score": "p", "decision": "y"},
        },
        "gate": {"metrics": {"roc_auc": {"threshold": 0.5}}},
    }
)
# Only a score: the checks of one probability column, without a decision column in the way.
SCORE_ONLY = ModelContract.from_mapping(
    {
        "model": {
            "name": "m",
            "task": "binary_classification",
            "label": "delayed",
            "outputs": {"score": "delay_probability"},
        },
        "gate": {"metrics": {"roc_auc": {"threshold": 0.5}}},
    }
)
REGRESSION = ModelContract.from_mapping(contracts.REGRESSION)
MULTICLASS = ModelContract.from_mapping(contracts.MULTICLASS)


def test_regression_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(10, 3, 400)
    yhat = y + rng.normal(0, 1, 400)
    got = score_outputs(REGRESSION, y, checked_outputs(REGRESSION, pd.DataFrame({"yhat": yhat}), 400))
    assert got["rmse"] == pytest.approx(math.sqrt(metrics.mean_squared_error(y, yhat)))
    assert got["mae"] == pytest.approx(metrics.mean_absolute_error(y, yhat))
    assert got["r2"] == pytest.approx(metrics.r2_score(y, yhat))
    assert math.isnan(regression_metrics([3.0, 3.0], [2.0, 4.0])["r2"])  # constant truth: undefined


def test_multiclass_metrics_compare_classes_as_text() -> None:
    labels = pd.Series([0, 1, 2, 2, 1, 0])  # integers in the data, text in the contract
    probabilities = np.eye(3)[[0, 1, 2, 1, 1, 0]] * 0.8 + 0.2 / 3
    frame = pd.DataFrame(probabilities, columns=["p0", "p1", "p2"])
    frame["cls"] = [0, 1, 2, 1, 1, 0]
    frame["p_top"] = frame[["p0", "p1", "p2"]].max(axis=1)
    got = score_outputs(MULTICLASS, labels, checked_outputs(MULTICLASS, frame, 6))
    assert got["accuracy"] == pytest.approx(5 / 6)
    assert got["macro_f1"] == pytest.approx(metrics.f1_score(labels, frame["cls"], average="macro"))
    assert got["log_loss"] == pytest.approx(
        metrics.log_loss(labels.astype(str), probabilities, labels=["0", "1", "2"])
    )
    assert math.isnan(multiclass_metrics(["9"], ["0"], [[1.0, 0.0, 0.0]], ("0", "1", "2"))["log_loss"])


@pytest.mark.parametrize(
    ("contract", "output", "message"),
    [
        (BINARY, [0.1, 0.2], "predict returned list, not a table with the columns ['p', 'y']"),
        (BINARY, pd.DataFrame({"p": [0.1, 0.2]}), "predict returned no 'y' column"),
        (BINARY, pd.DataFrame({"p": [0.1, 1.5], "y": [0, 1]}), "'p' is outside [0, 1] in 1 of 2 rows"),
        (BINARY, pd.DataFrame({"p": [0.1], "y": [0]}), "predict returned 1 rows for 2 input rows"),
        (REGRESSION, pd.DataFrame({"yhat": [1.0, float("inf")]}), "'yhat' is NaN or infinite in 1 of 2 rows"),
        (REGRESSION, pd.DataFrame({"yhat": ["a", "b"]}), "'yhat' is not numeric (e.g. 'a')"),
        (
            MULTICLASS,
            pd.DataFrame(
                {"p_top": [0.5, 0.5], "cls": [0, 1], "p0": [0.5, 0.5], "p1": [0.5, 0.2], "p2": [0, 0]}
            ),
            "the class probabilities do not sum to 1 in 1 of 2 rows (e.g. 0.7)",
        ),
        (
            MULTICLASS,
            pd.DataFrame({"p_top": [1, 1], "cls": [0, 7], "p0": [1, 1], "p1": [0, 0], "p2": [0, 0]}),
            "'cls' holds '7', not one of the classes ['0', '1', '2']",
        ),
    ],
)
def test_output_that_breaks_the_contract_is_named(
    contract: ModelContract, output: object, message: str
) -> None:
    with pytest.raises(UnscorableModelError) as caught:
        checked_outputs(contract, output, 2)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        (np.array([0.1, 0.2, 0.3]), "predict returned ndarray of shape (3,), not a table"),
        ([0.1, 0.2, 0.3], "predict returned list, not a table with the columns ['delay_probability']"),
        (pd.DataFrame({"score": [0.1, 0.2, 0.3]}), "no 'delay_probability' column (columns: ['score'])"),
        (pd.DataFrame({"delay_probability": [0.1, 0.2]}), "predict returned 2 rows for 3 input rows"),
        (
            pd.DataFrame([[0.1, 0.2]] * 3, columns=["delay_probability"] * 2),
            "2 columns named 'delay_probability'",
        ),
        (pd.DataFrame({"delay_probability": ["0.1", "high", "0.3"]}), "is not numeric (e.g. 'high')"),
        (pd.DataFrame({"delay_probability": [True, False, True]}), "is not numeric (e.g. 'True')"),
        (pd.DataFrame({"delay_probability": [0.1, None, 0.3]}), "is NaN or infinite in 1 of 3 rows"),
        (
            pd.DataFrame({"delay_probability": [0.1, math.inf, 0.3]}),
            "is NaN or infinite in 1 of 3 rows (e.g. inf)",
        ),
        (
            pd.DataFrame({"delay_probability": [-0.5, 0.5, 1.5]}),
            "is outside [0, 1] in 2 of 3 rows (min -0.5, max 1.5)",
        ),
    ],
)
def test_unusable_binary_output_is_named(output: object, problem: str) -> None:
    with pytest.raises(UnscorableModelError) as caught:
        checked_outputs(SCORE_ONLY, output, 3)
    assert problem in str(caught.value)


def test_usable_output_gives_the_probabilities_as_floats() -> None:
    frame = pd.DataFrame({"delay_probability": [0, 1, 0.25], "delayed": [0, 1, 0]})
    out = checked_outputs(SCORE_ONLY, frame, 3)["delay_probability"]
    assert out.tolist() == [0.0, 1.0, 0.25] and out.dtype == float


def test_a_regression_score_may_be_any_finite_number() -> None:
    checked = checked_outputs(REGRESSION, pd.DataFrame({"yhat": [-40.0, 1e6]}), 2)
    assert checked["yhat"].tolist() == [-40.0, 1e6]


_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.text(max_size=3))


@settings(max_examples=200, deadline=None)
@given(
    frame=data_frames(
        [column("p", elements=_values), column("y", elements=st.integers(0, 1))],
    )
)
def test_any_binary_output_is_refused_by_name_or_scored_on_valid_probabilities(frame: pd.DataFrame) -> None:
    """No other exception, and nothing outside [0, 1] or non-finite reaches the metrics."""
    try:
        checked = checked_outputs(BINARY, frame, len(frame))
    except UnscorableModelError as exc:
        assert "'p'" in str(exc) or "rows" in str(exc)
        return
    assert ((checked["p"] >= 0) & (checked["p"] <= 1)).all()
    scored = score_outputs(BINARY, frame["y"], checked)
    assert set(scored) == {"roc_auc", "average_precision", "accuracy", "f1", "log_loss", "brier"}


def test_a_binary_decision_is_scored_as_served_and_must_be_0_or_1() -> None:
    contract = ModelContract.from_mapping(
        {
            "model": {
                "name": "m",
                "task": "binary_classification",
                "label": "y",
                "outputs": {"score": "p", "decision": "d"},
            },
            "gate": {"metrics": {"f1": {"threshold": 0.5}}},
        }
    )
    frame = pd.DataFrame({"p": [0.1, 0.2, 0.3, 0.4], "d": [0, 0, 1, 1]})
    scored = score_outputs(contract, pd.Series([0, 0, 1, 1]), checked_outputs(contract, frame, 4))
    assert scored["f1"] == scored["accuracy"] == 1.0  # its threshold is 0.25, not 0.5
    for bad in ("yes", 2, 0.5):
        with pytest.raises(UnscorableModelError, match=r"'d' holds .* not a 0/1 decision"):
            checked_outputs(contract, frame.assign(d=[0, 0, 1, bad]), 4)


@pytest.mark.parametrize(
    ("metric", "decision", "truth", "share"),
    [
        ("accuracy", 1, 1, 1.0),
        ("accuracy", 1, 0, 0.0),
        ("accuracy", 1.0, 1, 1.0),  # a float decision column still names class 1
        ("accuracy", "2", 2, 1.0),  # classes of a contract are text, feedback sends ids
        ("accuracy", "cat", "dog", 0.0),
        ("mae", 3.5, 1.0, 2.5),
        ("mae", -1, 1.5, 2.5),
    ],
)
def test_each_labelled_row_adds_its_share_of_the_online_metric(
    metric: str, decision: object, truth: object, share: float
) -> None:
    assert online_value(metric, decision, truth) == share


def test_shadow_agreement_is_the_same_class_or_a_close_value() -> None:
    assert decisions_agree(BINARY, 1, 1) and not decisions_agree(BINARY, 1, 0)
    assert decisions_agree(MULTICLASS, "2", 2)
    assert decisions_agree(REGRESSION, 100.0, 100.5) and not decisions_agree(REGRESSION, 100.0, 102.0)
    with pytest.raises(ValueError, match="unknown online metric 'auc'"):
        online_value("auc", 1, 1)


@given(
    st.lists(
        st.tuples(st.sampled_from([0, 1, 0.0, 1.0]), st.sampled_from([0, 1, 1.0])), min_size=1, max_size=60
    )
)
def test_f1_and_balanced_accuracy_of_a_window_are_sklearns_on_its_rows(
    rows: list[tuple[float, float]],
) -> None:
    """The canary judges a window by the rows' confusion cells: the same number as the metric
    computed on the window's decisions and labels at once."""
    decided = [int(d) for d, _ in rows]
    truth = [int(t) for _, t in rows]
    f1 = online_aggregate("f1", [online_value("f1", d, t) for d, t in rows])
    assert f1 == pytest.approx(metrics.f1_score(truth, decided, zero_division=0.0))
    balanced = online_aggregate(
        "balanced_accuracy", [online_value("balanced_accuracy", d, t) for d, t in rows]
    )
    if len(set(truth)) == 2:  # sklearn warns and differs only on one-class windows, ours: that class's recall
        assert balanced == pytest.approx(metrics.balanced_accuracy_score(truth, decided))
    else:
        assert balanced == pytest.approx(np.mean(np.asarray(decided) == np.asarray(truth)))


def test_flagging_every_row_is_chance_on_balanced_accuracy_whatever_the_delay_rate() -> None:
    """Why the demo's contract judges its canary by balanced accuracy: accuracy rewards the
    threshold 0.5 that answers "on time" to every flight, F1 rewards flagging every flight when
    delays are common, balanced accuracy gives both exactly 0.5."""
    for positives in (1, 10, 30):
        truth = [1] * positives + [0] * (40 - positives)
        everything = [online_value("balanced_accuracy", 1, t) for t in truth]
        nothing = [online_value("balanced_accuracy", 0, t) for t in truth]
        assert online_aggregate("balanced_accuracy", everything) == 0.5
        assert online_aggregate("balanced_accuracy", nothing) == 0.5
    assert online_aggregate("f1", []) is None and online_aggregate("accuracy", []) is None
