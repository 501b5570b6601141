"""Mini-batch training with early stopping on validation ROC AUC, then the decision threshold.

Delayed flights are the minority (13-33% a month), so their loss is weighted up
(``positive_weight``); the weight's shift of the logit is taken back out of the output layer,
so the served probability stays the probability of a delay and log loss keeps its meaning.
``shuffle_labels`` trains on permuted labels: a model with no skill, to show what the gate refuses.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import log_loss, roc_auc_score

from flight_delays.classifier import FlightDelayClassifier
from flight_delays.decision import ThresholdPolicy, choose_threshold
from flight_delays.schema import LABEL

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _auc(labels: np.ndarray, proba: np.ndarray) -> float:
    # A validation slice with one class only has no AUC; NaN keeps training going on loss alone.
    return float(roc_auc_score(labels, proba)) if len(np.unique(labels)) == 2 else float("nan")


def positive_weight(params: Mapping[str, Any]) -> float | None:
    """``training.positive_weight``, the loss weight of a delayed flight: ``None`` for
    ``balanced`` (negatives / positives of the training split), else a number above 0 (1: unweighted)."""
    value = params.get("positive_weight", "balanced")
    if value == "balanced":
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and value > 0):
        raise ValueError(
            f"training.positive_weight must be 'balanced' or a number above 0, got {type(value).__name__} "
            f"{str(value)[:40]!r}"
        )
    return float(value)


def shuffled_labels(params: Mapping[str, Any]) -> bool:
    """``training.shuffle_labels``: true/false, or 1/0 as a numeric trigger-form field sends it."""
    value = params.get("shuffle_labels", False)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(
        f"training.shuffle_labels must be true or false (or 1/0), got {type(value).__name__} {value!r}"
    )


def _permuted(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.assign(**{LABEL: rng.permutation(frame[LABEL].to_numpy())})


def train_classifier(
    train: pd.DataFrame, validation: pd.DataFrame, params: dict[str, Any]
) -> tuple[FlightDelayClassifier, list[dict[str, float]]]:
    """Train, keep the epoch with the best validation AUC, stop after ``patience`` worse epochs,
    then choose the decision threshold on the validation rows (``training.threshold``, unless
    ``training.decision_threshold`` fixes one).

    Returns the best model and one history row per epoch (what the log shows and MLflow plots).
    """
    # A bad setting fails here, not after minutes of training.
    policy, weight, shuffle = (
        ThresholdPolicy.from_params(params),
        positive_weight(params),
        shuffled_labels(params),
    )
    if len(train) == 0 or len(validation) == 0:
        raise ValueError(f"cannot train on {len(train)} training and {len(validation)} validation rows")
    if train[LABEL].nunique() < 2:
        raise ValueError(f"the training rows hold only one class of {LABEL!r}: nothing to learn")
    seed = int(params["seed"])
    seed_everything(seed)
    torch.set_num_threads(int(params["num_threads"]))
    if shuffle:
        logger.warning("training.shuffle_labels: training and validation labels are permuted")
        rng = np.random.default_rng(seed)
        train, validation = _permuted(train, rng), _permuted(validation, rng)
    model = FlightDelayClassifier.create(train, params)
    codes, numerics = model.tensors(train)
    val_codes, val_numerics = model.tensors(validation)
    labels = torch.as_tensor(train[LABEL].to_numpy(), dtype=torch.float32)
    val_labels = validation[LABEL].to_numpy()
    if weight is None:
        positives = float(labels.sum())
        weight = (len(labels) - positives) / positives
    # A weight w on positives moves the optimal logit by log(w): subtracting it gives back the
    # probability under the real class balance.
    offset = math.log(weight)
    optimizer = torch.optim.AdamW(
        model.net.parameters(), lr=float(params["learning_rate"]), weight_decay=float(params["weight_decay"])
    )
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([weight]))
    batch_size, max_epochs, patience = (
        int(params["batch_size"]),
        int(params["max_epochs"]),
        int(params["patience"]),
    )
    generator = torch.Generator().manual_seed(seed)

    best_score, best_state, best_epoch, history = -np.inf, None, 0, []
    logger.info(
        "Training on %d rows (validation %d) for at most %d epochs, patience %d",
        len(train),
        len(validation),
        max_epochs,
        patience,
    )
    for epoch in range(1, max_epochs + 1):
        model.net.train()
        total = 0.0
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model.net(codes[batch], numerics[batch]), labels[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        model.net.eval()
        with torch.inference_mode():
            proba = torch.sigmoid(model.net(val_codes, val_numerics) - offset).numpy().astype(np.float64)
        row = {
            "epoch": epoch,
            "train_loss": total / len(labels),
            "val_loss": float(log_loss(val_labels, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
            "val_auc": _auc(val_labels, proba),
        }
        history.append(row)
        # Without an AUC (one-class validation slice) the lower loss decides.
        score = row["val_auc"] if not np.isnan(row["val_auc"]) else -row["val_loss"]
        improved = score > best_score
        if improved:
            best_score, best_state, best_epoch = score, copy.deepcopy(model.net.state_dict()), epoch
        logger.info(
            "epoch %d/%d  train_loss %.4f  val_loss %.4f  val_auc %.4f%s",
            epoch,
            max_epochs,
            row["train_loss"],
            row["val_loss"],
            row["val_auc"],
            "  (best)" if improved else "",
        )
        if epoch - best_epoch >= patience:
            logger.info("Early stopping: no better validation AUC for %d epochs", patience)
            break
    model.net.load_state_dict(best_state)
    with torch.no_grad():
        model.net.mlp[-1].bias -= offset
    model.net.eval()
    logger.info(
        "Kept epoch %d (validation AUC %.4f); delayed flights weighted %.3f",
        best_epoch,
        history[best_epoch - 1]["val_auc"],
        weight,
    )
    choice = choose_threshold(val_labels, model.predict_proba(validation), policy)
    model.threshold, model.threshold_rule = choice.threshold, choice.rule
    logger.info(
        "Decision threshold %.4f (%s): validation precision %.4f, recall %.4f, F1 %.4f",
        choice.threshold,
        choice.rule,
        choice.precision,
        choice.recall,
        choice.f1,
    )
    return model, history
