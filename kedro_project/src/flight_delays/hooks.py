"""MLflow tracking for ``kedro run``: one run per pipeline run, registration at the end.

A hand-written hook rather than kedro-mlflow: whoever starts Kedro (Airflow task, notebook,
CLI) may already own an MLflow run and this hook then logs into it instead of opening another;
it registers only complete runs (model + metrics + eval set + lineage), and it avoids the
plugin's file-store default and leaked nested runs (shared/reference/kedro_gx.md §2.3).
Logging itself lives in ``flight_delays.tracking``, which the test helpers call too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


class MlflowTrackingHook:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._owns_run = False
        self._logged: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._project_path = Path(context.project_path)
        # ``data_root`` only says where this run's files go (Airflow passes a scratch folder):
        # it is not a model parameter, and hashing it would make identical runs look different.
        self._params = {k: v for k, v in context.params.items() if k != "data_root"}
        try:
            self._config = dict(context.config_loader["mlflow"])
        except KeyError:
            self._config = {}
        # Read (and refused if malformed) before anything trains; through the config loader, so
        # --conf-source and environments apply to it as to the rest of conf/.
        from conveyor.core.contract import CONTRACT_FILE, ModelContract

        self._contract = ModelContract.from_mapping(
            dict(context.config_loader["conveyor"]), source=f"conf/<env>/{CONTRACT_FILE}"
        )

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        import mlflow

        from conveyor.core.lineage import git_commit, git_dirty, params_hash
        from conveyor.core.tracking import flatten_params

        self._reset()
        self._configure_tracking()
        run = mlflow.active_run()
        if run is None:
            run = mlflow.start_run(run_name=f"kedro {self._pipeline_name(run_params)} {run_params['run_id']}")
            self._owns_run = True
        logger.info("MLflow run %s at %s", run.info.run_id, mlflow.get_tracking_uri())
        mlflow.log_params(flatten_params(self._params))
        dirty = git_dirty(self._project_path)
        mlflow.set_tags(
            {
                "conveyor.pipeline": self._pipeline_name(run_params),
                "conveyor.params_hash": params_hash(self._params),
                "conveyor.git_commit": git_commit(self._project_path),
                "conveyor.git_dirty": "unknown" if dirty is None else str(dirty).lower(),
                "kedro.run_id": str(run_params["run_id"]),
            }
        )

    @hook_impl
    def after_node_run(self, node: Any, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        import mlflow

        from conveyor.core.validation import ValidationReport
        from flight_delays import tracking
        from flight_delays.mlflow_model import log_flight_model

        if "data_validation_report" in outputs:
            report = outputs["data_validation_report"]
            tracking.log_validation_report(report, ValidationReport.from_dict(report).to_text())
        if "partition_lineage" in outputs:
            lineage = outputs["partition_lineage"]
            mlflow.set_tags(
                {"conveyor.partition": lineage["partition"], "conveyor.data_hash": lineage["data_hash"]}
            )
            self._logged["lineage"] = lineage
        if "reference_sample" in outputs:
            tracking.log_reference_sample(outputs["reference_sample"])
        if "eval_set" in outputs:
            tracking.log_eval_set(outputs["eval_set"])
            self._logged["eval_set"] = True
        if "training_history" in outputs:
            tracking.log_training_history(outputs["training_history"])
        if "flight_model" in outputs:
            example = inputs.get("validation_set")
            self._logged["model"] = log_flight_model(outputs["flight_model"], example)
        if "evaluation_metrics" in outputs:
            tracking.log_evaluation(
                outputs["evaluation_metrics"],
                outputs.get("roc_curve_plot"),
                outputs.get("confusion_matrix_plot"),
            )
            self._logged["metrics"] = True

    @hook_impl
    def on_node_error(self, error: Exception) -> None:
        from conveyor.core.validation import DataValidationError
        from flight_delays import tracking

        if isinstance(error, DataValidationError):
            tracking.log_validation_report(error.report.to_dict(), error.report.to_text())

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        import mlflow

        from conveyor.core.lineage import lineage_tags
        from flight_delays import tracking

        try:
            missing = [k for k in ("lineage", "eval_set", "model", "metrics") if k not in self._logged]
            if missing:
                logger.warning(
                    "Model not registered: this run did not produce %s (run the whole pipeline to register)",
                    ", ".join(missing),
                )
                return
            run_tags = mlflow.get_run(mlflow.active_run().info.run_id).data.tags
            lineage = self._logged["lineage"]
            tags = lineage_tags(
                data_hash=lineage["data_hash"],
                git_commit=run_tags["conveyor.git_commit"],
                pipeline=run_tags["conveyor.pipeline"],
                params_hash=run_tags["conveyor.params_hash"],
                partition=lineage["partition"],
            )
            registry = self._params["registry"]
            version = tracking.register_candidate(
                self._logged["model"], self._contract, registry["alias"], tags
            )
            mlflow.set_tag("conveyor.model_version", version.version)
            logger.info(
                "Registered %s version %s with alias %r (models:/%s@%s)",
                version.name,
                version.version,
                registry["alias"],
                version.name,
                registry["alias"],
            )
        finally:
            self._end_run("FINISHED")

    @hook_impl
    def on_pipeline_error(self, error: Exception) -> None:
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.set_tag("conveyor.error", f"{type(error).__name__}: {error}"[:5000])
        self._end_run("FAILED")

    def _end_run(self, status: str) -> None:
        import mlflow

        if self._owns_run and mlflow.active_run() is not None:
            mlflow.end_run(status)
        self._owns_run = False

    def _configure_tracking(self) -> None:
        """Use the caller's tracking URI if any; otherwise the sqlite file from conf/mlflow.yml."""
        import mlflow
        from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

        if not is_tracking_uri_set():
            uri = str(self._config.get("tracking_uri", "sqlite:///mlflow.db"))
            if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
                uri = f"sqlite:///{(self._project_path / uri.removeprefix('sqlite:///')).resolve()}"
            mlflow.set_tracking_uri(uri)
            local = True
        else:
            local = mlflow.get_tracking_uri().startswith(("sqlite:", "file:"))
        experiment = self._config.get("experiment", "flight_delays")
        if mlflow.get_experiment_by_name(experiment) is None:
            artifacts = self._config.get("artifact_location") if local else None
            location = (self._project_path / artifacts).resolve().as_uri() if artifacts else None
            mlflow.create_experiment(experiment, artifact_location=location)
        mlflow.set_experiment(experiment)

    @staticmethod
    def _pipeline_name(run_params: dict[str, Any]) -> str:
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        return "+".join(names)
