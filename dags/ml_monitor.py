"""ml_monitor of the demo model, built by the DAG factory from kedro_project/conf/base/conveyor.yml.

What it does is documented in ``conveyor.dags.monitor``; what is specific to the demo (datasets, partitions,
schedule, deployment, thresholds) is in that file's ``airflow:`` section. ``CONVEYOR_YML`` points
it at another contract.
"""

from pathlib import Path

from conveyor.dags import build_dag, contract_path

dag = build_dag(
    contract_path(Path(__file__).parents[1] / "kedro_project/conf/base/conveyor.yml"), "ml_monitor"
)
