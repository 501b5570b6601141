"""A model's output checked against its contract, and the offline metrics of its task.

Shared by the model gate and performance monitoring, so a metric means the same thing before
promotion and in production. A metric that cannot be computed (one class in the labels, too few
rows) is NaN, never an exception: NaN then fails the gate with the metric named.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor.core.contract import METRICS, ModelContract

if TYPE_CHECKING:
    import pandas as pd


class UnscorableModelError(Exception):
    """A version that cannot be scored through its own fault: it does not load, its ``predict``
    raises, or its output breaks the contract (a column missing, a probability outside [0, 1]).
    The message says which."""


def binary_metrics(labels: Any, probabilities: Any, decisions: Any = None) -> dict[str, float]:
    """ROC AUC, average precision, log loss, Brier on the probabilities; accuracy and F1 of the
    model's own 0/1 ``decisions`` (the served ones: its threshold need not be 0.5), or of
    ``probability >= 0.5`` for a model that declares no decision."""
    from sklearn import metrics

    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    if len(y) == 0 or np.isnan(p).any() or np.isnan(y).any():
        return dict.fromkeys(METRICS["binary_classification"], float("nan"))
    decided = p >= 0.5 if decisions is None else np.asarray(decisions, dtype=float) == 1
    both_classes = len(np.unique(y)) == 2
    return {
        "roc_auc": float(metrics.roc_auc_score(y, p)) if both_classes else float("nan"),
        "average_precision": float(metrics.average_precision_score(y, p)) if both_classes else float("nan"),
        "log_loss": float(metrics.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(metrics.brier_score_loss(y, p)),
        "accuracy": float(metrics.accuracy_score(y, decided)),
        "f1": float(metrics.f1_score(y, decided, zero_division=0.0)),
    }


def regression_metrics(labels: Any, values: Any) -> dict[str, float]:
    """RMSE, MAE and R² (NaN when the labels do not vary: R² is undefined there)."""
    y = np.asarray(labels, dtype=float)
    v = np.asarray(values, dtype=float)
    if len(y) == 0 or not (np.isfinite(y).all() and np.isfinite(v).all()):
        return dict.fromkeys(METRICS["regression"], float("nan"))
    errors = v - y
    spread = float(((y - y.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt((errors**2).mean())),
        "mae": float(np.abs(errors).mean()),
        "r2": 1.0 - float((errors**2).sum()) / spread if spread > 0 else float("nan"),
    }


def multiclass_metrics(
    labels: Any, decisions: Any, probabilities: Any, classes: tuple[str, ...]
) -> dict[str, float]:
    """Accuracy and macro F1 of the decisions, log loss of the class probabilities.

    Classes are compared as text, as ``conveyor.yml`` lists them, so a label column of integers
    and a contract saying ``["0", "1", "2"]`` agree.
    """
    from sklearn import metrics

    y = np.asarray([str(v) for v in labels], dtype=object)
    d = np.asarray([str(v) for v in decisions], dtype=object)
    p = np.asarray(probabilities, dtype=float)
    if len(y) == 0 or np.isnan(p).any():
        return dict.fromkeys(METRICS["multiclass_classification"], float("nan"))
    unknown = set(y) - set(classes)
    loss = (
        float("nan") if unknown else float(metrics.log_loss(y, np.clip(p, 1e-15, 1.0), labels=list(classes)))
    )
    return {
        "accuracy": float(metrics.accuracy_score(y, d)),
        "macro_f1": float(metrics.f1_score(y, d, labels=list(classes), average="macro", zero_division=0.0)),
        "log_loss": loss,
    }


# A binary decision's cell of the confusion matrix, the share ``f1`` and ``balanced_accuracy``
# keep per labelled row: those metrics are not means of per-row numbers, but of these counts.
TRUE_NEGATIVE, TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE = 0.0, 1.0, 2.0, 3.0
CONFUSION_METRICS = ("f1", "balanced_accuracy")


def online_value(metric: str, prediction: Any, truth: Any) -> float:
    """One labelled row's share of an online metric (``ONLINE_METRICS``), so a slot keeps one
    number per label and any window can be judged (``online_aggregate``).

    ``accuracy``: 1.0 when the decision is the truth (numbers compare as numbers, ``1 == 1.0``;
    anything else as text, like the classes of a contract); ``mae``: the absolute error;
    ``f1`` and ``balanced_accuracy`` (binary 0/1 decisions): the row's confusion-matrix cell.
    """
    if metric == "accuracy":
        return float(_same(prediction, truth))
    if metric == "mae":
        return abs(float(prediction) - float(truth))
    if metric in CONFUSION_METRICS:
        flagged, positive = _same(prediction, 1), _same(truth, 1)
        if positive:
            return TRUE_POSITIVE if flagged else FALSE_NEGATIVE
        return FALSE_POSITIVE if flagged else TRUE_NEGATIVE
    raise ValueError(f"unknown online metric {metric!r}")


def online_aggregate(metric: str, shares: Any) -> float | None:
    """The online metric over a window of rows' shares (``online_value``); ``None`` for none.

    F1 of a window without a positive decision or label is 0, as the gate's F1 (zero_division=0);
    balanced accuracy is the mean recall of the classes the window's labels hold.
    """
    values = np.asarray(shares, dtype=float)
    if len(values) == 0:
        return None
    if metric not in CONFUSION_METRICS:
        return float(values.mean())
    tp, fp, fn, tn = (
        float(np.sum(values == cell))
        for cell in (TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE, TRUE_NEGATIVE)
    )
    if metric == "f1":
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    recalls = [hit / (hit + miss) for hit, miss in ((tp, fn), (tn, fp)) if hit + miss]
    return float(np.mean(recalls))


def _same(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return str(a) == str(b)


def decisions_agree(contract: ModelContract | None, a: Any, b: Any) -> bool:
    """Whether two versions decided alike on one row (shadow agreement): the same class, or for a
    regressor values within 1% of each other (exact float equality would never hold)."""
    if contract is not None and contract.task == "regression":
        return math.isclose(float(a), float(b), rel_tol=0.01, abs_tol=1e-9)
    return _same(a, b)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def score_outputs(contract: ModelContract, labels: Any, outputs: pd.DataFrame) -> dict[str, float]:
    """The task's metrics for outputs already checked by ``checked_outputs``."""
    columns = contract.outputs
    if contract.task == "binary_classification":
        decisions = outputs[columns.decision] if columns.decision else None
        return binary_metrics(labels, outputs[columns.score], decisions)
    if contract.task == "regression":
        return regression_metrics(labels, outputs[columns.score])
    return multiclass_metrics(
        labels, outputs[columns.decision], outputs[list(columns.probabilities)], contract.classes
    )


def checked_outputs(contract: ModelContract, predictions: Any, rows: int) -> pd.DataFrame:
    """``predictions`` as the contract says they must be: a table with one row per input row and
    every output column, numeric and finite, probabilities in [0, 1] (summing to 1 across the
    classes of a multi-class model), decisions among the classes.

    Raises ``UnscorableModelError`` naming the first problem: metrics computed on such output
    would be garbage or an exception, and either would hide the real problem.
    """
    import pandas as pd

    outputs = contract.outputs
    if not isinstance(predictions, pd.DataFrame):
        shape = getattr(predictions, "shape", None)
        what = type(predictions).__name__ + (f" of shape {tuple(shape)}" if shape is not None else "")
        raise UnscorableModelError(
            f"predict returned {what}, not a table with the columns {outputs.required}"
        )
    missing = [c for c in outputs.required if c not in predictions.columns]
    if missing:
        raise UnscorableModelError(
            f"predict returned no {', '.join(map(repr, missing))} column "
            f"(columns: {list(map(str, predictions.columns))[:20]})"
        )
    if len(predictions) != rows:
        raise UnscorableModelError(f"predict returned {len(predictions)} rows for {rows} input rows")
    checked = pd.DataFrame(index=predictions.index)
    probability_columns = set(outputs.probabilities)
    if contract.task != "regression":
        probability_columns.add(outputs.score)
    for name in [outputs.score, *outputs.probabilities]:
        checked[name] = _numbers(predictions, name, rows, probability=name in probability_columns)
    if outputs.probabilities:
        sums = checked[list(outputs.probabilities)].sum(axis=1)
        off = (sums - 1.0).abs() > 1e-3
        if off.any():
            raise UnscorableModelError(
                f"the class probabilities do not sum to 1 in {int(off.sum())} of {rows} rows "
                f"(e.g. {float(sums[off].iloc[0]):.4g})"
            )
    if outputs.decision:
        decision = predictions[outputs.decision]
        if contract.classes:
            outside = ~decision.astype(str).isin(contract.classes)
            if outside.any():
                raise UnscorableModelError(
                    f"{outputs.decision!r} holds {str(decision[outside].iloc[0])[:40]!r}, "
                    f"not one of the classes {list(contract.classes)[:10]}"
                )
        elif contract.task == "binary_classification":
            numeric = pd.to_numeric(decision, errors="coerce")
            outside = ~numeric.isin([0, 1])
            if outside.any():
                raise UnscorableModelError(
                    f"{outputs.decision!r} holds {str(decision[outside].iloc[0])[:40]!r}, not a 0/1 decision"
                )
        checked[outputs.decision] = decision
    return checked


def _numbers(predictions: pd.DataFrame, name: str, rows: int, probability: bool) -> pd.Series:
    import pandas as pd

    column = predictions[name]
    if isinstance(column, pd.DataFrame):
        raise UnscorableModelError(f"predict returned {column.shape[1]} columns named {name!r}")
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any() or column.dtype == bool:
        first = column[bad].iloc[0] if bad.any() else column.iloc[0]
        raise UnscorableModelError(f"{name!r} is not numeric (e.g. {str(first)[:40]!r})")
    values = values.astype(float)
    finite = np.isfinite(values.to_numpy())
    if not finite.all():
        count, first = int((~finite).sum()), values[~finite].iloc[0]
        raise UnscorableModelError(f"{name!r} is NaN or infinite in {count} of {rows} rows (e.g. {first})")
    if probability:
        outside = (values < 0.0) | (values > 1.0)
        if outside.any():
            raise UnscorableModelError(
                f"{name!r} is outside [0, 1] in {int(outside.sum())} of {rows} rows "
                f"(min {values.min():.4g}, max {values.max():.4g})"
            )
    return values
