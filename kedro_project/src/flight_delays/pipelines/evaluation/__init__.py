"""Score the trained model on the held-out (latest) rows; metrics and plots."""

from flight_delays.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
