"""Held-out metrics and the two pictures people look at first: ROC curve and confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from flight_delays.classifier import FlightDelayClassifier
from flight_delays.schema import LABEL


def classification_metrics(labels: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall, F1 at ``threshold``; ROC AUC and log loss on probabilities."""
    predicted = (proba >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, proba)) if both_classes else float("nan"),
        "log_loss": float(skm.log_loss(labels, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "positive_rate": float(np.mean(labels)),
        "rows": float(len(labels)),
    }


def evaluate_classifier(
    model: FlightDelayClassifier, eval_set: pd.DataFrame, min_rows: int = 1
) -> tuple[dict[str, float], Any, Any]:
    """Metrics at the model's own decision threshold plus ROC and confusion-matrix figures."""
    if len(eval_set) < max(1, min_rows):
        raise ValueError(
            f"the evaluation set has {len(eval_set)} rows, fewer than min_eval_rows={min_rows}: "
            "metrics on so few rows would not mean anything"
        )
    threshold = model.threshold
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = eval_set[LABEL].to_numpy()
    proba = model.predict_proba(eval_set)
    # The threshold is a number of the run people compare across versions, so it is a metric too.
    scores = {**classification_metrics(labels, proba, threshold), "decision_threshold": threshold}

    roc_fig, ax = plt.subplots(figsize=(5, 5))
    if len(np.unique(labels)) == 2:
        fpr, tpr, _ = skm.roc_curve(labels, proba)
        ax.plot(fpr, tpr, label=f"model (AUC {scores['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (held-out rows)")
    ax.legend(loc="lower right")
    roc_fig.tight_layout()

    cm_fig, ax = plt.subplots(figsize=(5, 4.5))
    matrix = skm.confusion_matrix(labels, (proba >= threshold).astype(int), labels=[0, 1])
    skm.ConfusionMatrixDisplay(matrix, display_labels=["on time", "delayed"]).plot(ax=ax, colorbar=False)
    ax.set_title(f"Confusion matrix (threshold {threshold:.3f})")
    cm_fig.tight_layout()
    plt.close(roc_fig)
    plt.close(cm_fig)
    return scores, roc_fig, cm_fig
