"""Detectors versioned beside the model version they watch, as artifacts of its training run.

``drift/detector/<target>/<backend>-<method>/`` holds the saved detector (alibi-detect's
``config.toml`` + ``x_ref.npy`` for the alibi backend); it is built once from the run's
``reference/reference_sample.parquet`` and reused by every later check of that version.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from conveyor.core.drift import DriftConfig, DriftDetector, build_detector, load_detector
from conveyor.core.drift.interface import DriftDetectorLoadError, DriftInputError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "reference/reference_sample.parquet"
METRICS_ARTIFACT = "evaluation/metrics.json"
DETECTOR_ARTIFACT = "drift/detector"
FEATURES = "features"
PREDICTIONS = "predictions"
TARGETS = (FEATURES, PREDICTIONS)
SCORE_COLUMN = "delay_probability"


def detector_artifact_path(target: str, config: DriftConfig) -> str:
    if target not in TARGETS:
        raise ValueError(f"unknown detector target {target!r}: expected one of {TARGETS}")
    return f"{DETECTOR_ARTIFACT}/{target}/{config.backend}-{config.method}"


def load_reference_sample(client: MlflowClient, run_id: str) -> pd.DataFrame:
    from mlflow.exceptions import MlflowException

    try:
        local = client.download_artifacts(
            run_id, REFERENCE_ARTIFACT, tempfile.mkdtemp(prefix="conveyor-ref-")
        )
    except (MlflowException, OSError) as exc:
        raise DriftInputError(
            f"run {run_id} has no reference sample at {REFERENCE_ARTIFACT!r}: "
            f"cannot build a drift detector ({exc})"
        ) from exc
    return pd.read_parquet(local)


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
    path = detector_artifact_path(target, config)
    if client.list_artifacts(run_id, path):
        local = client.download_artifacts(run_id, path, tempfile.mkdtemp(prefix="conveyor-detector-"))
        try:
            detector = load_detector(local)
        except DriftDetectorLoadError as exc:
            raise DriftDetectorLoadError(
                f"drift detector of {model_name} v{version} (run {run_id}, artifact {path}) "
                f"failed to load: {exc}"
            ) from exc
        if detector.config == config:
            log.info("drift: using saved detector %s of %s v%s", path, model_name, version)
            return detector
        log.info("drift: saved detector %s has another configuration; rebuilding", path)
    reference = load_reference_sample(client, run_id)
    if target == PREDICTIONS:
        from conveyor.core.gate import load_version_model

        model = load_version_model(client, model_name, version)
        scores = model.predict(reference.drop(columns=[c for c in ("delayed",) if c in reference]))
        reference = pd.DataFrame({SCORE_COLUMN: scores[SCORE_COLUMN].to_numpy(dtype=float)})
        detector = build_detector(reference, config, numeric=(SCORE_COLUMN,), categorical=())
    else:
        detector = build_detector(reference, config)
    with tempfile.TemporaryDirectory(prefix="conveyor-detector-") as tmp:
        detector.save(Path(tmp))
        client.log_artifacts(run_id, tmp, path)
    log.info(
        "drift: built detector %s of %s v%s from %d reference rows", path, model_name, version, len(reference)
    )
    return detector


def reference_metrics(client: MlflowClient, run_id: str, metrics: tuple[str, ...]) -> dict[str, float]:
    """The training run's held-out metrics (``evaluation/metrics.json``, else the run's metrics)."""
    import json

    from mlflow.exceptions import MlflowException

    try:
        local = client.download_artifacts(
            run_id, METRICS_ARTIFACT, tempfile.mkdtemp(prefix="conveyor-metrics-")
        )
        values = json.loads(Path(local).read_text())
    except (MlflowException, OSError, ValueError):
        values = client.get_run(run_id).data.metrics
    return {m: float(values[m]) for m in metrics if values.get(m) is not None}
