"""Real registered flight models for tests, trained in seconds on a small slice of real data.

Uses the project's own functions (data loading, features, training, evaluation, MLflow logging
and registration) so a test that gets a model from here gets what ``kedro run`` registers.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[2] / "kedro_project"


def flight_contract(name: str) -> Any:
    """The demo project's own contract, for a test model registered under ``name``."""
    import dataclasses

    from conveyor.core.contract import ModelContract

    return dataclasses.replace(ModelContract.from_file(PROJECT / "conf" / "base" / "conveyor.yml"), name=name)


# February, not January: January's held-out tail (Jan 27-31) is barely predictable from these
# features (ROC AUC 0.59-0.63 for real labels, 0.38-0.64 for shuffled ones, so "shuffled" was
# not reliably worse). On February real labels give ~0.75 and shuffled ones <= 0.49.
DEFAULT_MONTHS = ("2013-02",)


@lru_cache(maxsize=1)
def project_parameters() -> dict[str, Any]:
    """The Kedro project's parameters exactly as ``kedro run`` would read them from conf/base."""
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(conf_source=str(PROJECT / "conf"), base_env="base", default_run_env="base")
    return dict(loader["parameters"])


def _splits(months: Sequence[str], max_rows: int) -> tuple[pd.DataFrame, Any]:
    from flight_delays.data import flights_by_month, join_weather, read_table, select_months
    from flight_delays.features import build_features, split_by_time

    settings = project_parameters()["data_processing"]
    flights = select_months(flights_by_month(), ",".join(months))
    model_input = build_features(join_weather(flights, read_table("weather")))
    splits = split_by_time(
        model_input,
        validation_fraction=settings["validation_fraction"],
        test_fraction=settings["test_fraction"],
        max_rows=max_rows,
        seed=settings["seed"],
    )
    return flights, splits


def eval_frame(months: Sequence[str] = DEFAULT_MONTHS, max_rows: int = 4000) -> pd.DataFrame:
    """Held-out real rows (raw features + ``delayed``): the latest part of ``months``, which no
    model from ``register_flight_model`` on the same months was trained or early-stopped on."""
    from flight_delays.schema import FEATURES, LABEL

    _, splits = _splits(tuple(months), max_rows)
    return splits.test[[*FEATURES, LABEL]].reset_index(drop=True)


def register_flight_model(
    tracking_uri: str,
    name: str,
    *,
    months: Sequence[str] = DEFAULT_MONTHS,
    max_rows: int = 4000,
    shuffle_labels: bool = False,
    alias: str = "challenger",
    seed: int = 0,
    max_epochs: int = 8,
) -> Any:
    """Train, evaluate, log and register a flight model; returns the ``ModelVersion``.

    ``shuffle_labels`` permutes the training and validation labels, which gives a model no
    better than chance: a real, clearly worse candidate for gate tests.
    """
    import mlflow

    from conveyor.core import tracking
    from conveyor.core.lineage import content_hash, git_commit, lineage_tags, params_hash
    from flight_delays.evaluation import evaluate_classifier
    from flight_delays.mlflow_model import log_flight_model
    from flight_delays.schema import FEATURES, LABEL
    from flight_delays.training import train_classifier

    flights, splits = _splits(tuple(months), max_rows)
    train, validation = splits.train.copy(), splits.validation.copy()
    if shuffle_labels:
        rng = np.random.default_rng(seed)
        train[LABEL] = rng.permutation(train[LABEL].to_numpy())
        validation[LABEL] = rng.permutation(validation[LABEL].to_numpy())
    params = {**project_parameters()["training"], "seed": seed, "max_epochs": max_epochs}
    classifier, history = train_classifier(train, validation, params)
    scores, roc_fig, cm_fig = evaluate_classifier(classifier, splits.test)

    # Like the ``mlflow_uri`` fixture, this leaves the client pointed at ``tracking_uri``.
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_experiment(f"{name}-tests")
    with mlflow.start_run(run_name=f"register_flight_model {name}"):
        mlflow.log_params(
            {"months": ",".join(months), "max_rows": max_rows, "shuffle_labels": shuffle_labels}
        )
        tracking.log_history(history)
        tracking.log_metrics(scores)
        mlflow.log_figure(roc_fig, f"{tracking.FIGURES_FOLDER}/roc_curve.png")
        mlflow.log_figure(cm_fig, f"{tracking.FIGURES_FOLDER}/confusion_matrix.png")
        tracking.log_frame(splits.test[[*FEATURES, LABEL]], tracking.EVAL_SET_ARTIFACT)
        tracking.log_frame(train[[*FEATURES, LABEL]], tracking.REFERENCE_ARTIFACT)
        model_info = log_flight_model(classifier, splits.test)
        tags = lineage_tags(
            data_hash=content_hash(flights),
            git_commit=git_commit(PROJECT),
            pipeline="tests.support.register_flight_model",
            params_hash=params_hash({**params, "max_rows": max_rows, "shuffle_labels": shuffle_labels}),
            partition=",".join(months),
        )
        mlflow.set_tags(tags)
        return tracking.register_version(
            model_info.model_uri, name, alias=alias, tags=tags, contract=flight_contract(name)
        )


ADVERSARIAL_CODE = Path(__file__).with_name("adversarial_model.py")
# What ``adversarial_model.py`` can be told to do wrong ("none": a servable model of the same kind).
FAULTS = (
    "none",
    "raise_on_load",
    "raise_on_predict",
    "wrong_columns",
    "no_label_column",
    "too_few_rows",
    "flat_array",
    "out_of_range",
    "nan",
)


def register_adversarial_model(
    tracking_uri: str,
    name: str,
    fault: str,
    eval_set: pd.DataFrame,
    *,
    with_signature: bool = True,
    alias: str = "challenger",
) -> Any:
    """Register a model that misbehaves as ``fault`` says (see ``FAULTS``); returns the ``ModelVersion``.

    Its run logs ``eval_set`` where the gate and infra validation look for real rows, exactly as a
    training run does. ``with_signature`` gives it the flight model's input and output signature
    (features -> ``delay_probability``, ``delayed``), so a check that reads the declared outputs
    can tell a model that breaks its own contract.
    """
    import mlflow

    from conveyor.core import tracking
    from flight_delays.mlflow_model import SIGNATURE
    from flight_delays.schema import FEATURES, LABEL

    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {FAULTS}")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_experiment(f"{name}-tests")
    with mlflow.start_run(run_name=f"adversarial {fault}"):
        tracking.log_frame(eval_set[[*FEATURES, LABEL]], tracking.EVAL_SET_ARTIFACT)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ADVERSARIAL_CODE),
            model_config={"fault": fault},
            signature=SIGNATURE if with_signature else None,
            # Declared, so logging skips MLflow's requirement inference (a subprocess per model).
            pip_requirements=["mlflow", "numpy", "pandas"],
        )
        return tracking.register_version(
            info.model_uri,
            name,
            alias=alias,
            tags={"conveyor.test.fault": fault},
            contract=flight_contract(name),
        )


def model_files(artifact_root: Path, tracking_uri: str, name: str, version: str) -> Path:
    """The folder on disk that holds a version's files, under an ``mlflow server``'s artifact root.

    For tests that break a registered model the way a bad upload or a lost file would.
    """
    from mlflow import MlflowClient

    location = MlflowClient(tracking_uri, tracking_uri).get_model_version_download_uri(name, version)
    scheme, _, rest = location.partition(":")
    if scheme != "mlflow-artifacts":
        raise ValueError(f"{name} v{version} is not stored by the server's artifact proxy: {location}")
    return artifact_root / rest.lstrip("/")
