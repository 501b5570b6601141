"""Training rows -> the torch demand regressor, with its per-epoch history."""

from bike_rentals.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
