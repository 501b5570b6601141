"""Model contracts of a small regressor and a three-class classifier, for tests of every task."""

from __future__ import annotations

from typing import Any

REGRESSION: dict[str, Any] = {
    "model": {"name": "r", "task": "regression", "label": "y", "outputs": {"score": "yhat"}},
    "gate": {"metrics": {"rmse": {"tolerance": 2.0}, "r2": {"threshold": 0.3}}},
}
MULTICLASS: dict[str, Any] = {
    "model": {
        "name": "c",
        "task": "multiclass_classification",
        "label": "y",
        "classes": ["0", "1", "2"],
        "outputs": {"score": "p_top", "decision": "cls", "probabilities": ["p0", "p1", "p2"]},
    },
    "gate": {"metrics": {"macro_f1": {"threshold": 0.3}}},
}
