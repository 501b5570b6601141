"""Detectors versioned beside the model version they watch, as artifacts of its training run.

A detector is built once from the run's ``reference/reference_sample.parquet`` and reused by
every later check of that version. Several sensors may find it missing at once (the data and
prediction drift sensors of one DAG run, two DAG runs), and MLflow's artifact store has no
rename: a reader listing a folder that another sensor is still uploading would load half a
detector. So every build goes to its own folder, ``drift/detector/<target>/<backend>-<method>/
<build>/`` (alibi-detect's ``config.toml`` + ``x_ref.npy`` for the alibi backend), and only once
it is fully uploaded does the run tag ``conveyor.drift.detector.<target>.<backend>-<method>``
point at it. Readers follow the tag, never a listing; a builder that finds the tag set by a
faster one meanwhile uses that one, so later checks all test with the same detector. The
loser's folder stays behind unused (MLflow clients cannot delete artifacts).
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from conveyor.core.contract import ContractError, ModelContract, version_contract
from conveyor.core.drift import DriftConfig, DriftDetector, build_detector, load_detector
from conveyor.core.drift.interface import DriftDetectorLoadError, DriftInputError
from conveyor.core.scoring import UnscorableModelError, checked_outputs
from conveyor.core.tracking import METRICS_ARTIFACT, REFERENCE_ARTIFACT, read_frame_artifact

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

DETECTOR_ARTIFACT = "drift/detector"
DETECTOR_TAG = "conveyor.drift.detector"
FEATURES = "features"
PREDICTIONS = "predictions"
TARGETS = (FEATURES, PREDICTIONS)


def detector_artifact_path(target: str, config: DriftConfig) -> str:
    """The folder under which the builds of one (target, backend, method) go."""
    if target not in TARGETS:
        raise ValueError(f"unknown detector target {target!r}: expected one of {TARGETS}")
    return f"{DETECTOR_ARTIFACT}/{target}/{config.backend}-{config.method}"


def detector_tag(target: str, config: DriftConfig) -> str:
    """The run tag that names the complete build readers use (set only after its upload)."""
    detector_artifact_path(target, config)  # validates the target
    return f"{DETECTOR_TAG}.{target}.{config.backend}-{config.method}"


def load_reference_sample(client: MlflowClient, run_id: str) -> pd.DataFrame:
    from mlflow.exceptions import MlflowException

    try:
        return read_frame_artifact(client, run_id, REFERENCE_ARTIFACT)
    except (MlflowException, OSError) as exc:
        raise DriftInputError(
            f"run {run_id} has no reference sample at {REFERENCE_ARTIFACT!r}: "
            f"cannot build a drift detector ({exc})"
        ) from exc


def _saved_detector(
    client: MlflowClient, model_name: str, version: str, run_id: str, build: str
) -> DriftDetector:
    """Download a complete build into a private folder and load it; a corrupt one raises."""
    with tempfile.TemporaryDirectory(prefix="conveyor-detector-") as tmp:
        local = client.download_artifacts(run_id, build, tmp)
        try:
            return load_detector(local)
        except DriftDetectorLoadError as exc:
            raise DriftDetectorLoadError(
                f"drift detector of {model_name} v{version} (run {run_id}, artifact {build}) "
                f"failed to load: {exc}"
            ) from exc


def model_detector(
    client: MlflowClient,
    model_name: str,
    version: str,
    target: str = FEATURES,
    config: DriftConfig | None = None,
) -> DriftDetector:
    """The version's saved detector, built and logged on first use; a corrupt one raises.

    A stored detector with a different configuration (p-value, correction...) is rebuilt, so a
    changed DAG setting takes effect instead of silently testing with the old one.
    """
    config = config or DriftConfig()
    run_id = client.get_model_version(model_name, version).run_id
    tag = detector_tag(target, config)
    saved = client.get_run(run_id).data.tags.get(tag)
    if saved:
        detector = _saved_detector(client, model_name, version, run_id, saved)
        if detector.config == config:
            log.info("drift: using saved detector %s of %s v%s", saved, model_name, version)
            return detector
        log.info("drift: saved detector %s has another configuration; rebuilding", saved)
    detector = _build(client, model_name, version, run_id, target, config)
    build = f"{detector_artifact_path(target, config)}/{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory(prefix="conveyor-detector-") as tmp:
        detector.save(Path(tmp))
        client.log_artifacts(run_id, tmp, build)
    meanwhile = client.get_run(run_id).data.tags.get(tag)
    if meanwhile and meanwhile != saved:
        winner = _saved_detector(client, model_name, version, run_id, meanwhile)
        if winner.config == config:
            log.info("drift: another check saved detector %s first; using it", meanwhile)
            return winner
    client.set_tag(run_id, tag, build)
    log.info("drift: built detector %s of %s v%s", build, model_name, version)
    return detector


def _build(
    client: MlflowClient, model_name: str, version: str, run_id: str, target: str, config: DriftConfig
) -> DriftDetector:
    """Fit on the run's reference sample: its input columns (the contract's label and outputs are
    not inputs), or for predictions the version's own scores on it (the contract's score column)."""
    contract = model_contract(client, model_name, version)
    reference = load_reference_sample(client, run_id)
    not_inputs = [c for c in (contract.label, *contract.outputs.required) if c in reference.columns]
    inputs = reference.drop(columns=not_inputs)
    log.info("drift: building a %s detector from %d reference rows", target, len(reference))
    if target == PREDICTIONS:
        from conveyor.core.gate import load_version_model

        model = load_version_model(client, model_name, version)
        score = contract.outputs.score
        try:
            outputs = checked_outputs(contract, model.predict(inputs), len(inputs))
        except UnscorableModelError as exc:
            raise DriftInputError(
                f"{model_name} v{version} on its own reference sample: {exc}; no prediction detector"
            ) from None
        scores = pd.DataFrame({score: outputs[score].to_numpy(dtype=float)})
        return build_detector(scores, config, numeric=(score,), categorical=())
    return build_detector(inputs, config)


def model_contract(client: MlflowClient, model_name: str, version: str) -> ModelContract:
    """The version's contract; a version without one cannot be monitored (``DriftInputError``)."""
    try:
        return version_contract(client, model_name, version)
    except ContractError as exc:
        raise DriftInputError(f"cannot build a drift detector: {exc}") from None


def reference_metrics(client: MlflowClient, run_id: str, metrics: tuple[str, ...]) -> dict[str, float]:
    """The training run's held-out metrics (``evaluation/metrics.json``, else the run's metrics)."""
    import json

    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="conveyor-metrics-") as tmp:
        try:
            values = json.loads(Path(client.download_artifacts(run_id, METRICS_ARTIFACT, tmp)).read_text())
        except (MlflowException, OSError, ValueError):
            values = client.get_run(run_id).data.metrics
    return {m: float(values[m]) for m in metrics if values.get(m) is not None}
