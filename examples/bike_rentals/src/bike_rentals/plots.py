"""Figures of the held-out hours, for people reading a run: where the model is wrong, and how."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: Airflow workers and CI have no display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray) -> Figure:
    """Each held-out hour as a point; the diagonal is a perfect forecast."""
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.scatter(actual, predicted, s=8, alpha=0.5)
    top = float(max(np.max(actual, initial=1.0), np.max(predicted, initial=1.0))) * 1.05
    axes.plot([0, top], [0, top], color="grey", linewidth=1, linestyle="--")
    axes.set(
        xlim=(0, top), ylim=(0, top), xlabel="actual rentals per hour", ylabel="predicted rentals per hour"
    )
    axes.set_title("Held-out hours: predicted vs actual")
    figure.tight_layout()
    return figure


def residual_histogram(actual: np.ndarray, predicted: np.ndarray) -> Figure:
    """Spread of prediction minus actual; a shifted centre means the model is biased."""
    residuals = np.asarray(predicted, dtype=float) - np.asarray(actual, dtype=float)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.hist(residuals, bins=40)
    axes.axvline(0.0, color="grey", linewidth=1, linestyle="--")
    axes.set(xlabel="predicted - actual (rentals per hour)", ylabel="hours")
    axes.set_title(
        f"Residuals: mean {residuals.mean():+.1f}, sd {residuals.std():.1f}"
        if len(residuals)
        else "Residuals"
    )
    figure.tight_layout()
    return figure
