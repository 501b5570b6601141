"""What one ``kedro run`` records in MLflow, as its nodes finish, and the version it registers.

Artifacts go under the paths the generic parts read back (``conveyor.core.tracking``). The eval
set and the reference sample are logged with the model's declared inputs plus the label, so the
gate scores, and drift watches, exactly what the model is served; the model is checked against
its contract (it must return the score and decision columns) before anything is registered.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.core.contract import CONTRACT_FILE, ContractError, ModelContract
from conveyor.core.kedro_runner import DATA_ROOT_PARAM
from conveyor.kedro.config import KedroSection

logger = logging.getLogger(__name__)

# Rows of the eval set the freshly logged model is asked to predict before it may register.
CHECK_ROWS = 20


class ModelOutputError(ContractError):
    """The model the project logged does not answer as its contract says."""


class RunRecorder:
    """One pipeline run's MLflow record: started by ``start``, fed by node outputs, closed by
    ``finish`` (register when complete) or ``fail``."""

    def __init__(
        self,
        contract: ModelContract,
        section: KedroSection,
        project_path: Path,
        params: Mapping[str, Any],
        catalog: Any,
    ) -> None:
        self.contract = contract
        self.section = section
        self.project_path = project_path
        # ``data_root`` only says where this run's files go (Airflow passes a scratch folder): it
        # is not a model parameter, and hashing it would make identical runs look different.
        self.params = {k: v for k, v in params.items() if k != DATA_ROOT_PARAM}
        self.catalog = catalog
        self._owns_run = False
        self._model: Any = None
        self._model_info: Any = None
        self._frames: dict[str, Any] = {}  # eval_set / reference_sample until the model is logged
        self._logged: set[str] = set()
        self._lineage: Mapping[str, Any] | None = None
        self._gate_hashes: dict[str, str] = {}
        self._eval_hash = ""
        self._reports: list[Any] = []

    # -- the run ------------------------------------------------------------------------------

    def start(self, run_params: Mapping[str, Any]) -> None:
        import mlflow

        from conveyor.core.lineage import git_commit, git_dirty, params_hash
        from conveyor.core.tracking import flatten_params

        self._configure_tracking()
        pipeline = _pipeline_name(run_params)
        run = mlflow.active_run()
        if run is None:
            run = mlflow.start_run(run_name=f"kedro {pipeline} {run_params['run_id']}")
            self._owns_run = True
        logger.info("MLflow run %s at %s", run.info.run_id, mlflow.get_tracking_uri())
        mlflow.log_params(flatten_params(self.params))
        dirty = git_dirty(self.project_path)
        mlflow.set_tags(
            {
                "conveyor.pipeline": pipeline,
                "conveyor.params_hash": params_hash(self.params),
                "conveyor.git_commit": git_commit(self.project_path),
                "conveyor.git_dirty": "unknown" if dirty is None else str(dirty).lower(),
                "kedro.run_id": str(run_params["run_id"]),
            }
        )

    def finish(self) -> None:
        """Register when the run produced everything a version needs; the run ends FAILED (with
        the error as a tag) if registration itself fails."""
        try:
            self._register()
        except Exception as exc:
            self.fail(exc)
            raise
        self._end("FINISHED")

    def _register(self) -> None:
        import mlflow

        from conveyor.core.tracking import register_version

        missing = [
            field
            for field, done in (
                ("model", self._model_info is not None),
                ("metrics", "metrics" in self._logged),
                ("eval_set", "eval_set" in self._logged),
                ("reference_sample", "reference_sample" in self._logged),
            )
            if not done
        ]
        if missing:
            names = ", ".join(f"{getattr(self.section, f)} (kedro.{f})" for f in missing)
            logger.warning(
                "Model not registered: this run did not produce %s (run the whole pipeline to register)",
                names,
            )
            return
        tags = self._lineage_tags()
        mlflow.set_tags(tags)
        version = register_version(
            self._model_info.model_uri,
            self.contract.name,
            alias=self.section.alias,
            tags=tags,
            contract=self.contract,
        )
        mlflow.set_tag("conveyor.model_version", version.version)
        logger.info(
            "Registered %s version %s with alias %r (models:/%s@%s)",
            version.name,
            version.version,
            self.section.alias,
            version.name,
            self.section.alias,
        )

    def fail(self, error: Exception) -> None:
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.set_tag("conveyor.error", f"{type(error).__name__}: {error}"[:5000])
        self._end("FAILED")

    # -- what nodes produce -------------------------------------------------------------------

    def dataset_loaded(self, name: str, data: Any) -> None:
        """The data gate: a dataset named in ``kedro.data_gate`` is validated the first time a
        node loads it, and a critical failure stops that node."""
        import pandas as pd

        from conveyor.core.lineage import content_hash
        from conveyor.core.validation import validate_frame

        suite_name = dict(self.section.data_gate).get(name)
        if suite_name is None or name in self._gate_hashes:
            return
        if not isinstance(data, pd.DataFrame):
            raise ContractError(
                f"{CONTRACT_FILE}: kedro.data_gate.{name}: the dataset loads as {type(data).__name__}, "
                "not a DataFrame; validate a partitioned dataset in a node of the pipeline instead"
            )
        self._gate_hashes[name] = content_hash(data)
        report = validate_frame(data, self.catalog.load(suite_name), dataset=name)
        self._add_report(report)
        report.raise_for_critical()

    def node_outputs(self, outputs: Mapping[str, Any]) -> None:
        import mlflow

        from conveyor.core.tracking import FIGURES_FOLDER, log_history, log_metrics
        from conveyor.core.validation import ValidationReport

        section = self.section
        if section.validation_report in outputs:
            self._add_report(ValidationReport.from_dict(outputs[section.validation_report]))
        if section.lineage in outputs:
            self._lineage = _lineage(outputs[section.lineage], section.lineage)
            mlflow.set_tags(
                {
                    "conveyor.partition": self._lineage["partition"],
                    "conveyor.data_hash": self._lineage["data_hash"],
                }
            )
        if section.eval_set in outputs:
            from conveyor.core.lineage import content_hash

            self._frames["eval_set"] = self._with_label(outputs[section.eval_set], "eval_set")
            self._eval_hash = content_hash(self._frames["eval_set"])
        if section.reference_sample in outputs:
            self._frames["reference_sample"] = self._frame(
                outputs[section.reference_sample], "reference_sample"
            )
        if section.history in outputs:
            log_history(outputs[section.history])
        if section.metrics in outputs:
            log_metrics(_metrics(outputs[section.metrics], section.metrics))
            self._logged.add("metrics")
        for name in section.figures:
            if name in outputs:
                mlflow.log_figure(outputs[name], f"{FIGURES_FOLDER}/{name}.png")
        if section.model in outputs:
            self._model = outputs[section.model]
        self._log_pending()

    def node_failed(self, error: Exception) -> None:
        from conveyor.core.validation import DataValidationError

        if isinstance(error, DataValidationError) and error.report not in self._reports:
            self._add_report(error.report)

    # -- helpers ------------------------------------------------------------------------------

    def _log_pending(self) -> None:
        """Log the model once it and the eval set exist, then the frames, cut to its inputs."""
        from conveyor.core.tracking import EVAL_SET_ARTIFACT, REFERENCE_ARTIFACT, log_frame

        if self._model_info is None and self._model is not None and "eval_set" in self._frames:
            self._model_info = self._log_model(self._model, self._frames["eval_set"])
            self._model = None
        if self._model_info is None:
            return
        for field, path in (("eval_set", EVAL_SET_ARTIFACT), ("reference_sample", REFERENCE_ARTIFACT)):
            if field in self._frames:
                log_frame(self._served_columns(self._frames.pop(field), field), path)
                self._logged.add(field)

    def _log_model(self, model: Any, eval_set: Any) -> Any:
        import mlflow

        from conveyor.core.scoring import UnscorableModelError, checked_outputs

        info = self.section.model_logger()(model, eval_set)
        if not isinstance(getattr(info, "model_uri", None), str):
            raise ModelOutputError(
                f"kedro.log_model {self.section.log_model} returned {type(info).__name__}, not the "
                "ModelInfo of mlflow.pyfunc.log_model (or another flavour's log_model)"
            )
        rows = eval_set.drop(columns=[self.contract.label]).head(CHECK_ROWS)
        try:
            predictions = mlflow.pyfunc.load_model(info.model_uri).predict(rows)
            checked_outputs(self.contract, predictions, len(rows))
        except UnscorableModelError as exc:
            raise ModelOutputError(
                f"the model logged by {self.section.log_model} does not answer as {CONTRACT_FILE} "
                f"says ({self.contract.task}, outputs {list(self.contract.outputs.required)}): {exc}. "
                "Nothing was registered"
            ) from None
        return info

    def _served_columns(self, frame: Any, field: str) -> Any:
        """``frame`` with the model's declared inputs and the label (what the gate and drift read)."""
        signature = getattr(self._model_info, "signature", None)
        inputs = signature.inputs.input_names() if signature is not None and signature.inputs else None
        if not inputs:
            return frame
        columns = [*inputs, *([self.contract.label] if self.contract.label in frame.columns else [])]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ContractError(
                f"kedro.{field} {getattr(self.section, field)!r} lacks the model's input column(s) "
                f"{missing[:10]} (the signature logged by {self.section.log_model})"
            )
        return frame[columns]

    def _frame(self, value: Any, field: str) -> Any:
        import pandas as pd

        if not isinstance(value, pd.DataFrame):
            raise ContractError(
                f"kedro.{field} {getattr(self.section, field)!r} is {type(value).__name__}, not a DataFrame"
            )
        return value

    def _with_label(self, value: Any, field: str) -> Any:
        frame = self._frame(value, field)
        if self.contract.label not in frame.columns:
            raise ContractError(
                f"{CONTRACT_FILE}: model.label {self.contract.label!r} is not a column of kedro.{field} "
                f"{getattr(self.section, field)!r} (columns: {list(map(str, frame.columns))[:20]})"
            )
        return frame

    def _add_report(self, report: Any) -> None:
        from conveyor.core.tracking import log_validation_report
        from conveyor.core.validation import ValidationReport

        self._reports.append(report)
        log_validation_report(ValidationReport.combine(self._reports))

    def _lineage_tags(self) -> dict[str, str]:
        import mlflow

        from conveyor.core.lineage import lineage_tags

        run_tags = mlflow.get_run(mlflow.active_run().info.run_id).data.tags
        lineage = self._lineage or {
            "partition": _partition(self.contract, self.params),
            # The gated inputs when the plugin validated any, else the rows the model is judged on.
            "data_hash": _combined(self._gate_hashes) or self._eval_hash,
        }
        return lineage_tags(
            data_hash=lineage["data_hash"],
            git_commit=run_tags["conveyor.git_commit"],
            pipeline=run_tags["conveyor.pipeline"],
            params_hash=run_tags["conveyor.params_hash"],
            partition=lineage["partition"],
        )

    def _configure_tracking(self) -> None:
        """The caller's tracking URI if any; otherwise ``kedro.tracking_uri`` (relative sqlite
        paths are the project's)."""
        import mlflow
        from mlflow import MlflowClient
        from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

        from conveyor.core.experiments import experiment_id

        if not is_tracking_uri_set():
            mlflow.set_tracking_uri(self.section.store_uri(self.project_path))
        local = mlflow.get_tracking_uri().startswith(("sqlite:", "file:"))
        location = (self.project_path / self.section.artifact_location).resolve().as_uri() if local else None
        mlflow.set_experiment(experiment_id=experiment_id(MlflowClient(), self.section.experiment, location))

    def _end(self, status: str) -> None:
        import mlflow

        if self._owns_run and mlflow.active_run() is not None:
            mlflow.end_run(status)
        self._owns_run = False


def _pipeline_name(run_params: Mapping[str, Any]) -> str:
    names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
    return "+".join(names)


def _lineage(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not {"partition", "data_hash"} <= set(value):
        raise ContractError(f"kedro.lineage {name!r} must be a mapping with 'partition' and 'data_hash'")
    return {"partition": str(value["partition"]), "data_hash": str(value["data_hash"])}


def _metrics(value: Any, name: str) -> dict[str, float]:
    import math

    if not isinstance(value, Mapping) or not value:
        raise ContractError(f"kedro.metrics {name!r} must be a non-empty mapping of metric -> number")
    bad = [k for k, v in value.items() if isinstance(v, bool) or not isinstance(v, int | float)]
    if bad:
        raise ContractError(f"kedro.metrics {name!r}: {bad[:5]} are not numbers")
    dropped = sorted(str(k) for k, v in value.items() if not math.isfinite(v))
    if dropped:
        logger.warning("kedro.metrics %r: not logged, not finite: %s", name, ", ".join(dropped))
    return {str(k): float(v) for k, v in value.items() if math.isfinite(v)}


def _partition(contract: ModelContract, params: Mapping[str, Any]) -> str:
    """The partition a run trained on, without a lineage output: the Kedro parameter the
    ``airflow:`` section names (``ci.partition.runtime_param``, default ``partition``)."""
    node: Any = contract.extra
    for key in ("airflow", "ci", "partition", "runtime_param"):
        node = node.get(key) if isinstance(node, Mapping) else None
    value = params.get(node if isinstance(node, str) else "partition", "")
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _combined(hashes: Mapping[str, str]) -> str:
    """One hash of the gated input datasets (by name), or empty when none were loaded."""
    if not hashes:
        return ""
    digest = hashlib.sha256()
    for name in sorted(hashes):
        digest.update(f"{name}={hashes[name]};".encode())
    return digest.hexdigest()
