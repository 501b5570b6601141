from kedro.pipeline import Node, Pipeline

from flight_delays.pipelines.training import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.train_model,
                ["train_set", "validation_set", "params:training"],
                ["flight_model", "training_history"],
                name="train_model",
            )
        ]
    )
