"""What a training run records in MLflow, under the artifact paths of docs/contracts.md.

The Kedro hook calls these as nodes finish; ``tests/support/models.py`` calls the same functions
to register small real models, so tests exercise the code path the pipeline uses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models.model import ModelInfo

from conveyor.core.contract import ModelContract
from conveyor.core.tracking import log_frame, register_version
from flight_delays.schema import FEATURES, LABEL

VALIDATION_REPORT = "validation/data_validation_report"
REFERENCE_SAMPLE = "reference/reference_sample.parquet"
EVAL_SET = "evaluation/eval_set.parquet"
METRICS = "evaluation/metrics.json"
ROC_CURVE = "evaluation/roc_curve.png"
CONFUSION_MATRIX = "evaluation/confusion_matrix.png"


def log_validation_report(report: Mapping[str, Any], text: str) -> None:
    mlflow.log_dict(dict(report), f"{VALIDATION_REPORT}.json")
    mlflow.log_text(text, f"{VALIDATION_REPORT}.txt")


def log_reference_sample(sample: pd.DataFrame) -> None:
    log_frame(sample[[*FEATURES, LABEL]], REFERENCE_SAMPLE)


def log_eval_set(eval_set: pd.DataFrame) -> None:
    log_frame(eval_set[[*FEATURES, LABEL]], EVAL_SET)


def log_training_history(history: Sequence[Mapping[str, float]]) -> None:
    """Per-epoch loss and validation AUC as metric series (one request, not one per epoch)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    series = [
        Metric(key, float(value), now, int(row["epoch"]))
        for row in history
        for key, value in row.items()
        if key != "epoch"
    ]
    mlflow.MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=series, synchronous=True)


def log_evaluation(scores: Mapping[str, float], roc_figure: Any = None, confusion_figure: Any = None) -> None:
    mlflow.log_metrics({k: float(v) for k, v in scores.items()})
    mlflow.log_text(json.dumps(dict(scores), indent=2), METRICS)
    if roc_figure is not None:
        mlflow.log_figure(roc_figure, ROC_CURVE)
    if confusion_figure is not None:
        mlflow.log_figure(confusion_figure, CONFUSION_MATRIX)


def register_candidate(
    model_info: ModelInfo, contract: ModelContract, alias: str, tags: Mapping[str, str]
) -> ModelVersion:
    """A new version of ``contract.name`` with its contract and lineage tags (the lineage also on
    the run), and ``alias`` pointing at it."""
    mlflow.set_tags(dict(tags))
    return register_version(model_info.model_uri, contract.name, alias=alias, tags=tags, contract=contract)
