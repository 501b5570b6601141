"""Month partition -> data gate -> features -> time-ordered splits."""

from flight_delays.pipelines.data_processing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
