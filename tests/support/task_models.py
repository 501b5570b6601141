"""Small real models of the tasks other than the demo's: a regressor and a three-class classifier.

Trained in milliseconds on a fixed synthetic table (two features; a linear truth plus noise),
logged and registered through the same ``conveyor.core.tracking`` functions a project uses, with
the contracts of ``tests.support.contracts``, so the gate, the gateway and monitoring meet them
the way they meet any team's model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.support import contracts

CODE = Path(__file__).with_name("task_model.py")
TASKS = {"regression": contracts.REGRESSION, "multiclass_classification": contracts.MULTICLASS}


def task_table(task: str, rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Features ``x1``, ``x2`` and the label ``y``: a noisy linear target, or the class whose noisy
    linear score is highest."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (rows, 2))
    if task == "regression":
        y = 3 * x[:, 0] - 2 * x[:, 1] + 1 + rng.normal(0, 0.5, rows)
    else:
        truth = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
        y = (x @ truth.T + rng.gumbel(0, 0.5, (rows, 3))).argmax(axis=1)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "y": y})


def fit(task: str, train: pd.DataFrame) -> tuple[list[list[float]], list[float]]:
    """Least squares for the regressor; softmax regression by gradient descent for the classes."""
    x = train[["x1", "x2"]].to_numpy()
    if task == "regression":
        design = np.column_stack([x, np.ones(len(x))])
        coef, *_ = np.linalg.lstsq(design, train["y"].to_numpy(dtype=float), rcond=None)
        return [coef[:2].tolist()], [float(coef[2])]
    onehot = np.eye(3)[train["y"].to_numpy()]
    weights, bias = np.zeros((3, 2)), np.zeros(3)
    for _ in range(300):
        logits = x @ weights.T + bias
        proba = np.exp(logits - logits.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        weights -= 0.5 * (proba - onehot).T @ x / len(x)
        bias -= 0.5 * (proba - onehot).mean(axis=0)
    return weights.tolist(), bias.tolist()


def register_task_model(
    tracking_uri: str, name: str, task: str, *, good: bool = True, alias: str = "challenger"
) -> Any:
    """Train, log (eval set, reference sample) and register a model of ``task``; returns the version.

    ``good=False`` registers the trained weights negated: a real model that is clearly worse.
    """
    import mlflow

    from conveyor.core.contract import ModelContract
    from conveyor.core.tracking import log_frame, register_version

    table = task_table(task)
    train, held_out = table.iloc[:400], table.iloc[400:].reset_index(drop=True)
    weights, bias = fit(task, train)
    if not good:
        weights, bias = (-np.asarray(weights)).tolist(), (-np.asarray(bias)).tolist()
    contract = dataclasses.replace(ModelContract.from_mapping(TASKS[task]), name=name)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_experiment(f"{name}-tests")
    with mlflow.start_run(run_name=f"{task} {'good' if good else 'bad'}"):
        log_frame(held_out, "evaluation/eval_set.parquet")
        log_frame(train, "reference/reference_sample.parquet")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(CODE),
            model_config={"task": task, "weights": weights, "bias": bias},
            input_example=held_out[["x1", "x2"]].head(3),
            pip_requirements=["mlflow", "numpy", "pandas"],
        )
        return register_version(info.model_uri, name, alias=alias, tags={}, contract=contract)
