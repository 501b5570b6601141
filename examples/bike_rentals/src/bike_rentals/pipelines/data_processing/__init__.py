"""Months of hourly rentals -> data gate -> model input -> time-ordered splits."""

from bike_rentals.pipelines.data_processing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
