from kedro.pipeline import Node, Pipeline

from bike_rentals.pipelines.evaluation import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.predict_held_out,
                ["model", "eval_set", "params:evaluation"],
                "held_out_predictions",
                name="predict_held_out",
            ),
            Node(
                nodes.evaluate, ["held_out_predictions", "train_set"], "evaluation_metrics", name="evaluate"
            ),
            Node(
                nodes.plot_errors,
                "held_out_predictions",
                ["predicted_vs_actual_plot", "residuals_plot"],
                name="plot_errors",
            ),
        ]
    )
