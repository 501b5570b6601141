from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from flight_delays.classifier import FlightDelayClassifier
from flight_delays.evaluation import evaluate_classifier

logger = logging.getLogger(__name__)


def evaluate_model(
    model: FlightDelayClassifier, eval_set: pd.DataFrame, params: dict[str, Any]
) -> tuple[dict[str, float], Any, Any]:
    scores, roc_figure, confusion_figure = evaluate_classifier(model, eval_set, int(params["min_eval_rows"]))
    logger.info("Held-out metrics: %s", ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return scores, roc_figure, confusion_figure
