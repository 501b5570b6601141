"""Mini-batch training with early stopping on validation ROC AUC."""

from __future__ import annotations

import copy
import logging
import random
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import log_loss, roc_auc_score

from flight_delays.classifier import FlightDelayClassifier
from flight_delays.schema import LABEL

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _auc(labels: np.ndarray, proba: np.ndarray) -> float:
    # A validation slice with one class only has no AUC; NaN keeps training going on loss alone.
    return float(roc_auc_score(labels, proba)) if len(np.unique(labels)) == 2 else float("nan")


def train_classifier(
    train: pd.DataFrame, validation: pd.DataFrame, params: dict[str, Any]
) -> tuple[FlightDelayClassifier, list[dict[str, float]]]:
    """Train, keep the epoch with the best validation AUC, stop after ``patience`` worse epochs.

    Returns the best model and one history row per epoch (what the log shows and MLflow plots).
    """
    if len(train) == 0 or len(validation) == 0:
        raise ValueError(f"cannot train on {len(train)} training and {len(validation)} validation rows")
    if train[LABEL].nunique() < 2:
        raise ValueError(f"the training rows hold only one class of {LABEL!r}: nothing to learn")
    seed = int(params["seed"])
    seed_everything(seed)
    torch.set_num_threads(int(params["num_threads"]))
    model = FlightDelayClassifier.create(train, params)
    codes, numerics = model.tensors(train)
    labels = torch.as_tensor(train[LABEL].to_numpy(), dtype=torch.float32)
    val_labels = validation[LABEL].to_numpy()
    optimizer = torch.optim.AdamW(
        model.net.parameters(), lr=float(params["learning_rate"]), weight_decay=float(params["weight_decay"])
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
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
        proba = model.predict_proba(validation)
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
    model.net.eval()
    logger.info("Kept epoch %d (validation AUC %.4f)", best_epoch, history[best_epoch - 1]["val_auc"])
    return model, history
