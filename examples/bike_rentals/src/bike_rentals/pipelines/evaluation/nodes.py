"""Nodes of ``evaluation``: the gate's metrics on held-out hours, and figures of the errors."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bike_rentals.plots import predicted_vs_actual, residual_histogram
from bike_rentals.regressor import DemandRegressor
from bike_rentals.schema import LABEL, PREDICTION
from conveyor.core.scoring import regression_metrics

logger = logging.getLogger(__name__)


class TooFewEvaluationRowsError(ValueError):
    """Metrics on so few held-out hours are noise; registering a model on them would mislead."""


def predict_held_out(model: DemandRegressor, eval_set: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Actual and predicted rentals of each held-out hour."""
    if len(eval_set) < int(params["min_eval_rows"]):
        raise TooFewEvaluationRowsError(
            f"{len(eval_set)} held-out hours, fewer than min_eval_rows={params['min_eval_rows']}: "
            "train on more months or a larger test_fraction"
        )
    return pd.DataFrame({LABEL: eval_set[LABEL].to_numpy(dtype=float), PREDICTION: model.predict(eval_set)})


def evaluate(predictions: pd.DataFrame, train: pd.DataFrame) -> dict[str, float]:
    """RMSE, MAE and R² as the gate computes them (``conveyor.core.scoring``), beside the same
    metrics of always answering the training mean: a model that barely beats that has learnt nothing."""
    actual = predictions[LABEL].to_numpy()
    metrics = regression_metrics(actual, predictions[PREDICTION].to_numpy())
    baseline = regression_metrics(actual, np.full(len(actual), float(train[LABEL].mean())))
    result = {
        **metrics,
        **{f"baseline_{name}": value for name, value in baseline.items()},
        "eval_rows": float(len(actual)),
    }
    logger.info(
        "Held-out hours: RMSE %.2f (mean baseline %.2f), MAE %.2f (%.2f), R2 %.3f",
        result["rmse"],
        result["baseline_rmse"],
        result["mae"],
        result["baseline_mae"],
        result["r2"],
    )
    return result


def plot_errors(predictions: pd.DataFrame) -> tuple[Figure, Figure]:
    actual, predicted = predictions[LABEL].to_numpy(), predictions[PREDICTION].to_numpy()
    return predicted_vs_actual(actual, predicted), residual_histogram(actual, predicted)
