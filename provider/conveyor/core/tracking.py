"""Small MLflow logging helpers shared by the Kedro hook, test helpers and operators.

They log to the active run of the fluent API, so whoever owns the run (a Kedro hook, an
Airflow task, a notebook) decides where things go.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.contract import CONTRACT_TAG, ContractError, ModelContract

if TYPE_CHECKING:
    import pandas as pd

MAX_PARAM_LENGTH = 6000  # MLflow rejects longer parameter values

# Where a training run keeps what the generic parts read back (docs/contracts.md): the gate and
# infra validation score the eval set, drift detectors are fitted on the reference sample.
EVAL_SET_ARTIFACT = "evaluation/eval_set.parquet"
REFERENCE_ARTIFACT = "reference/reference_sample.parquet"
METRICS_ARTIFACT = "evaluation/metrics.json"
FIGURES_FOLDER = "evaluation"
VALIDATION_REPORT_JSON = "validation/data_validation_report.json"
VALIDATION_REPORT_TEXT = "validation/data_validation_report.txt"


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested parameters as ``a.b.c`` keys, because MLflow params are flat strings."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[name] = text[:MAX_PARAM_LENGTH]
    return flat


def log_frame(frame: pd.DataFrame, artifact_path: str) -> None:
    """A DataFrame as a parquet artifact at ``artifact_path`` (e.g. ``evaluation/eval_set.parquet``)."""
    import mlflow

    folder, _, filename = artifact_path.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / filename
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=folder or None)


def log_validation_report(report: Any) -> None:
    """A ``ValidationReport`` as JSON (for tools) and text (for people) on the active run."""
    import mlflow

    mlflow.log_dict(report.to_dict(), VALIDATION_REPORT_JSON)
    mlflow.log_text(report.to_text(), VALIDATION_REPORT_TEXT)


def log_history(history: Sequence[Mapping[str, float]]) -> None:
    """Per-epoch values (rows with an ``epoch`` key) as metric series, in one request rather
    than one per epoch and metric."""
    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    series = [
        Metric(key, float(value), now, int(row["epoch"]))
        for row in history
        for key, value in row.items()
        if key != "epoch"
    ]
    mlflow.MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=series, synchronous=True)


def log_metrics(scores: Mapping[str, float]) -> None:
    """Evaluation metrics as run metrics (to compare runs) and as one JSON artifact (to read)."""
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in scores.items()})
    mlflow.log_text(json.dumps(dict(scores), indent=2), METRICS_ARTIFACT)


def register_version(
    model_uri: str,
    name: str,
    *,
    alias: str,
    tags: Mapping[str, str],
    contract: ModelContract,
    timeout_s: int = 300,
) -> Any:
    """Register ``model_uri`` as a new version of ``name``, tag it and point ``alias`` at it.

    The version carries ``contract`` as its ``conveyor.contract`` tag: the gate, the gateway and
    monitoring read how to handle a version from the version itself. Returns the ``ModelVersion``.
    The alias moves only after registration and tagging succeeded, so ``models:/name@alias``
    never resolves to a half-described version.
    """
    import mlflow
    from mlflow import MlflowClient

    if contract.name != name:
        raise ContractError(
            f"the contract is for model {contract.name!r} but the version is being registered as {name!r}"
        )
    tags = {**tags, CONTRACT_TAG: contract.to_tag()}
    version = mlflow.register_model(model_uri, name, await_registration_for=timeout_s, tags=tags)
    client = MlflowClient()
    client.set_registered_model_alias(name, alias, version.version)
    return client.get_model_version(name, version.version)


def read_frame_artifact(client: Any, run_id: str, artifact_path: str) -> pd.DataFrame:
    """A Parquet artifact of ``run_id`` read into memory, through ``client``'s server.

    Downloaded into a private folder that is removed afterwards: concurrent readers never see each
    other's partial files, and nothing is left in /tmp. Download errors propagate
    (``MlflowException``, ``OSError``) for the caller to name in its own terms.
    """
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="conveyor-artifact-") as folder:
        return pd.read_parquet(client.download_artifacts(run_id, artifact_path, folder))
