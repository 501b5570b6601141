from kedro.pipeline import Node, Pipeline

from bike_rentals.pipelines.data_processing import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.select_partitions,
                ["bikeshare", "params:partitions"],
                "raw_partition",
                name="select_partitions",
            ),
            Node(
                nodes.gate_parameters,
                ["params:partitions", "params:data_gate"],
                "gate_parameters",
                name="gate_parameters",
            ),
            Node(
                nodes.validate_partition,
                ["raw_partition", "bikeshare_partition_suite", "gate_parameters", "params:partitions"],
                ["validated_partition", "data_validation_report"],
                name="validate_partition",
            ),
            Node(
                nodes.describe_partition,
                ["validated_partition", "params:partitions"],
                "partition_lineage",
                name="describe_partition",
            ),
            Node(nodes.build_model_input, "validated_partition", "model_input", name="build_model_input"),
            Node(
                nodes.split_hours,
                ["model_input", "params:data_processing"],
                ["train_set", "validation_set", "test_set"],
                name="split_hours",
            ),
            Node(nodes.model_view, "test_set", "eval_set", name="held_out_rows"),
            Node(
                nodes.reference_rows,
                ["train_set", "params:data_processing"],
                "reference_sample",
                name="reference_rows",
            ),
        ]
    )
