from kedro.pipeline import Node, Pipeline

from bike_rentals.pipelines.training import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.train_model,
                ["train_set", "validation_set", "params:training"],
                ["model", "training_history"],
                name="train_model",
            )
        ]
    )
