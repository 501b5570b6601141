"""``RetrainRequestOperator``: turns monitoring results into the ``ml_ci`` conf, or skips.

Put it between the sensors and Airflow's ``TriggerDagRunOperator(conf=request.output)``: it reads
the sensors' XCom payloads, records the reason in MLflow, and returns the conf. When no sensor
fired it skips, so the trigger downstream is skipped too; when a sensor failed (bad input), the
default ``all_success`` rule keeps it from running at all — nothing is retrained by mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException


class RetrainRequestOperator(BaseOperator):
    """Build the retraining conf from the payloads of ``monitor_task_ids``.

    :param monitor_task_ids: sensor tasks whose XCom payloads are read.
    :param triggered_by: who asks (templated), recorded in the conf, e.g. ``ml_monitor/{{ run_id }}``.
    :param partitions: partitions to train on (templated); default: those the windows cover.
    :param partition_format: how a partition is named (strftime of its start, ``%Y-%m`` for months).
    :param mlflow_conn_id: where the request is recorded.
    """

    template_fields = ("triggered_by", "partitions")
    ui_color = "#f6e3c6"

    def __init__(
        self,
        *,
        monitor_task_ids: Sequence[str],
        triggered_by: str = "ml_monitor",
        partitions: list[str] | None = None,
        partition_format: str = "%Y-%m",
        mlflow_conn_id: str = "mlflow_default",
        monitoring_experiment: str = "conveyor-monitoring",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not monitor_task_ids:
            raise ValueError("monitor_task_ids must name at least one sensor task")
        self.monitor_task_ids = list(monitor_task_ids)
        self.triggered_by = triggered_by
        self.partitions = partitions
        self.partition_format = partition_format
        self.mlflow_conn_id = mlflow_conn_id
        self.monitoring_experiment = monitoring_experiment

    def execute(self, context: Any) -> dict[str, Any]:
        from conveyor.core.retrain import NoRetrainNeeded, conf_from_results, record_retrain_request
        from conveyor.hooks.mlflow import MlflowHook

        results = [context["ti"].xcom_pull(task_ids=task_id) for task_id in self.monitor_task_ids]
        try:
            conf = conf_from_results(
                results, self.triggered_by, self.partitions or None, self.partition_format
            )
        except NoRetrainNeeded as exc:
            raise AirflowSkipException(str(exc)) from exc
        run_id = record_retrain_request(
            MlflowHook(self.mlflow_conn_id).get_conn(), conf, self.monitoring_experiment
        )
        conf["details"] = {**conf.get("details", {}), "request_run_id": run_id}
        self.log.info("retraining requested: %s (partitions %s)", conf["reason"], conf["partitions"])
        return conf
