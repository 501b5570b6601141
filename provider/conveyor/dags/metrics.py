"""The trigger-form fields of a model's metric rules: names, labels and bounds, per contract metric.

The gate (``ml_ci``) and the performance monitor (``ml_monitor``) both show one field per metric
the contract declares, so a regressor gets ``max_rmse`` where the demo classifier gets
``min_roc_auc``. The names follow the metric's direction: a floor is ``min_<metric>``, a ceiling
``max_<metric>``, the non-inferiority margin ``<metric>_tolerance``. Pure Python: ``config``
checks the names for collisions before any DAG exists.
"""

from __future__ import annotations

from typing import Any

from conveyor.core.contract import METRICS

# How the forms and descriptions write each metric of ``conveyor.core.contract.METRICS``.
LABELS: dict[str, str] = {
    "roc_auc": "ROC AUC",
    "average_precision": "average precision",
    "accuracy": "accuracy",
    "f1": "F1",
    "log_loss": "log loss",
    "brier": "Brier score",
    "macro_f1": "macro F1",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
}
# Metrics that live in [0, 1]; errors are >= 0 and R² is at most 1.
_UNIT_INTERVAL = {"roc_auc", "average_precision", "accuracy", "f1", "macro_f1", "brier"}
_NON_NEGATIVE = {"log_loss", "rmse", "mae"}


def higher_is_better(task: str, metric: str) -> bool:
    return METRICS[task][metric]


def threshold_param(task: str, metric: str) -> str:
    """``min_roc_auc`` (a floor) or ``max_rmse`` (a ceiling)."""
    return f"{'min' if higher_is_better(task, metric) else 'max'}_{metric}"


def tolerance_param(metric: str) -> str:
    return f"{metric}_tolerance"


def param_value(name: str) -> str:
    """The template that renders a form field's value (a number, under native rendering)."""
    return "{{ params." + name + " }}"


def threshold_word(task: str, metric: str) -> str:
    return "floor" if higher_is_better(task, metric) else "ceiling"


def bounds(metric: str) -> dict[str, Any]:
    """JSON-schema bounds of a threshold field, so the API refuses an impossible value."""
    if metric in _UNIT_INTERVAL:
        return {"minimum": 0, "maximum": 1}
    if metric in _NON_NEGATIVE:
        return {"minimum": 0}
    return {"maximum": 1}  # r2
