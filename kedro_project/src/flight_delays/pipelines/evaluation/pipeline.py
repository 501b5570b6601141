from kedro.pipeline import Node, Pipeline

from flight_delays.pipelines.evaluation import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.evaluate_model,
                ["flight_model", "eval_set", "params:evaluation"],
                ["evaluation_metrics", "roc_curve", "confusion_matrix"],
                name="evaluate_model",
            )
        ]
    )
