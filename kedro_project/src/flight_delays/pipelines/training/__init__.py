"""Train the torch classifier on the training split, early-stopped on the validation split."""

from flight_delays.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
