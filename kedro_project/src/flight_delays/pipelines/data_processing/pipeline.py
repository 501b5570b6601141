from kedro.pipeline import Node, Pipeline

from flight_delays.pipelines.data_processing import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.select_partition,
                ["flights", "params:partition"],
                "flights_partition",
                name="select_partition",
            ),
            Node(
                nodes.gate_parameters,
                ["flights", "params:partition", "params:data_gate"],
                "gate_parameters",
                name="gate_parameters",
            ),
            Node(
                nodes.validate_partition,
                [
                    "flights_partition",
                    "weather",
                    "flights_partition_suite",
                    "weather_partition_suite",
                    "gate_parameters",
                    "params:partition",
                ],
                ["validated_flights", "data_validation_report"],
                name="validate_partition",
            ),
            Node(
                nodes.describe_partition,
                ["validated_flights", "params:partition"],
                "partition_lineage",
                name="describe_partition",
            ),
            Node(
                nodes.build_model_input,
                ["validated_flights", "weather"],
                "model_input",
                name="build_model_input",
            ),
            Node(
                nodes.split_model_input,
                ["model_input", "params:data_processing"],
                ["train_set", "validation_set", "eval_set"],
                name="split_model_input",
            ),
            Node(
                nodes.sample_reference,
                ["train_set", "params:data_processing"],
                "reference_sample",
                name="sample_reference",
            ),
        ]
    )
