"""``DataValidationOperator``: a Great Expectations suite on a dataset or partition, as a gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from conveyor.core.tracking import VALIDATION_REPORT_JSON, VALIDATION_REPORT_TEXT
from conveyor.links.mlflow import MlflowRunLink, publish_links


class DataValidationOperator(BaseOperator):
    """Validate data before anything trains on it, with the readable report of ``conveyor.core.validation``.

    The suite comes from ``suite_path`` (a GX suite JSON) or from the Kedro project's catalog
    (``suite_dataset``, e.g. ``flights_partition_suite``); the data from ``data_path`` (parquet or
    csv) or from a catalog ``dataset`` (``partition`` picks partitions of a partitioned one).
    Expectations with ``"severity": "critical"`` fail the task; others are reported as warnings.

    :param warn_only: report critical failures without failing the task (a soft gate).
    :param mlflow_conn_id: log the report (JSON + text) as artifacts of a run in
        ``experiment_name``, with a link to it; ``None`` keeps it in XCom only. The run is
        tagged with the suite's and the rows' hashes (``conveyor.core.validation_record``), so
        a later task handed its id (``KedroRunOperator(reuse_validation=)``) does not evaluate
        the same suite on the same rows again; its id is the XCom ``mlflow_run_id``.

    ``suite_path``, ``suite_dataset``, ``data_path``, ``dataset``, ``partition``, ``env`` and
    ``conf_source`` are templated. The report dict is the XCom return value.
    """

    template_fields = (
        "suite_path",
        "suite_dataset",
        "data_path",
        "dataset",
        "partition",
        "env",
        "conf_source",
    )
    operator_extra_links = (MlflowRunLink(),)
    ui_color = "#d8e9ff"

    def __init__(
        self,
        *,
        suite_path: str | None = None,
        suite_dataset: str | None = None,
        data_path: str | None = None,
        dataset: str | None = None,
        partition: str | None = None,
        warn_only: bool = False,
        env: str | None = None,
        conf_source: str | None = None,
        kedro_conn_id: str = "kedro_default",
        mlflow_conn_id: str | None = "mlflow_default",
        experiment_name: str = "conveyor-data-validation",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (suite_path is None) == (suite_dataset is None):
            raise ValueError("set exactly one of suite_path and suite_dataset")
        if (data_path is None) == (dataset is None):
            raise ValueError("set exactly one of data_path and dataset")
        self.suite_path = suite_path
        self.suite_dataset = suite_dataset
        self.data_path = data_path
        self.dataset = dataset
        self.partition = partition
        self.warn_only = warn_only
        self.env = env
        self.conf_source = conf_source
        self.kedro_conn_id = kedro_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.experiment_name = experiment_name

    def _from_catalog(self, name: str, partition: str | None = None) -> Any:
        from conveyor.core.kedro_runner import load_dataset
        from conveyor.hooks.kedro import KedroHook

        project = KedroHook(self.kedro_conn_id).get_conn()
        return load_dataset(
            project.project_path,
            name,
            partition=partition,
            env=self.env or project.env,
            conf_source=self.conf_source or project.conf_source,
        )

    def _frame(self) -> tuple[Any, str]:
        import pandas as pd

        if self.dataset:
            label = self.dataset + (f" {self.partition}" if self.partition else "")
            return self._from_catalog(self.dataset, self.partition or None), label
        path = Path(str(self.data_path))
        if not path.is_file():
            raise FileNotFoundError(f"no data at {path}")
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        return frame, path.name

    def execute(self, context: Any) -> dict[str, Any]:
        from conveyor.core.validation import load_suite, validate_frame
        from conveyor.core.validation_record import record_tags

        suite = (
            load_suite(Path(str(self.suite_path)))
            if self.suite_path
            else self._from_catalog(self.suite_dataset)
        )
        frame, label = self._frame()
        record = record_tags(frame, suite)  # before GX, which annotates the suite's expectations
        self.log.info("validating %s (%d rows) against suite %r", label, len(frame), suite.get("name"))
        report = validate_frame(frame, suite, dataset=label)
        self.log.info("\n%s", report.to_text())
        if self.mlflow_conn_id:
            self._log_to_mlflow(context, report, record)
        if not report.success:
            if not self.warn_only:
                raise AirflowFailException(report.to_text())
            self.log.warning("critical expectations failed, continuing because warn_only=True")
        return report.to_dict()

    def _log_to_mlflow(self, context: Any, report: Any, record: dict[str, str]) -> None:
        from conveyor.core.experiments import experiment_id as get_experiment_id
        from conveyor.core.validation_record import STATUS_TAG
        from conveyor.hooks.mlflow import MlflowHook

        hook = MlflowHook(self.mlflow_conn_id)
        client = hook.get_conn()
        experiment_id = get_experiment_id(client, self.experiment_name)
        tags = {STATUS_TAG: "passed" if report.success else "failed", **record}
        if self.partition:
            tags["conveyor.partition"] = str(self.partition)
        run = client.create_run(experiment_id, run_name=f"validate {report.dataset}", tags=tags)
        client.log_text(run.info.run_id, report.to_json(), VALIDATION_REPORT_JSON)
        client.log_text(run.info.run_id, report.to_text(), VALIDATION_REPORT_TEXT)
        client.set_terminated(run.info.run_id, "FINISHED" if report.success else "FAILED")
        context["ti"].xcom_push(key="mlflow_run_id", value=run.info.run_id)
        publish_links(context, hook, run_id=run.info.run_id)
