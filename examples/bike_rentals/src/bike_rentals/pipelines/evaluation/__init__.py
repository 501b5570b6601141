"""Held-out hours -> RMSE, MAE, R² against a mean-predictor baseline, and two figures."""

from bike_rentals.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
