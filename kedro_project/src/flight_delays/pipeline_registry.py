"""Pipelines of the project.

Modules are imported explicitly rather than through ``find_pipelines``: since Kedro 1.5,
selective loading imports only ``pipelines/<requested name>``, so composite names would fail.
"""

from kedro.pipeline import Pipeline

from flight_delays.pipelines import data_processing, evaluation, training


def register_pipelines() -> dict[str, Pipeline]:
    parts = {
        "data_processing": data_processing.create_pipeline(),
        "training": training.create_pipeline(),
        "evaluation": evaluation.create_pipeline(),
    }
    return {**parts, "__default__": parts["data_processing"] + parts["training"] + parts["evaluation"]}
