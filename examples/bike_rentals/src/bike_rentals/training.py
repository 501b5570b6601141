"""Fitting the demand model: mini-batch Adam on the log scale, early stopping on validation RMSE.

Validation RMSE is measured in rentals per hour, the unit the gate judges, so the epoch kept is
the one best at what the model is judged by. Seeds fix the initial weights, dropout and batch
order: two runs on the same rows give the same model.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from bike_rentals.features import FeatureEncoder
from bike_rentals.regressor import DemandRegressor, TargetScale, build_network
from bike_rentals.schema import LABEL

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    seed: int
    hidden_units: list[int]
    dropout: float
    batch_size: int
    learning_rate: float
    weight_decay: float
    max_epochs: int
    patience: int
    num_threads: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainingConfig:
        """Kedro parameters; runtime overrides from a template may arrive as text ("40")."""
        return cls(
            seed=int(params["seed"]),
            hidden_units=[int(u) for u in params["hidden_units"]],
            dropout=float(params["dropout"]),
            batch_size=int(params["batch_size"]),
            learning_rate=float(params["learning_rate"]),
            weight_decay=float(params["weight_decay"]),
            max_epochs=int(params["max_epochs"]),
            patience=int(params["patience"]),
            num_threads=int(params["num_threads"]),
        )


def _rmse(model: DemandRegressor, rows: pd.DataFrame) -> float:
    errors = model.predict(rows) - rows[LABEL].to_numpy(dtype=np.float64)
    return float(np.sqrt(np.mean(errors**2)))


def fit_regressor(
    train: pd.DataFrame, validation: pd.DataFrame, config: TrainingConfig
) -> tuple[DemandRegressor, list[dict[str, float]]]:
    """The model of the best validation epoch, and one history row per epoch run."""
    if train.empty or validation.empty:
        raise ValueError(
            f"training needs rows in both sets, got {len(train)} train and {len(validation)} validation"
        )
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    encoder = FeatureEncoder.fit(train)
    target = TargetScale.fit(train[LABEL].to_numpy())
    features = torch.from_numpy(encoder.transform(train))
    labels = torch.from_numpy(target.encode(train[LABEL].to_numpy()))
    architecture = {
        "inputs": features.shape[1],
        "hidden_units": config.hidden_units,
        "dropout": config.dropout,
    }
    model = DemandRegressor(encoder, target, build_network(**architecture), architecture)
    optimiser = torch.optim.Adam(
        model.network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_fn = torch.nn.MSELoss()

    history: list[dict[str, float]] = []
    best_rmse, best_epoch, best_weights = float("inf"), 0, copy.deepcopy(model.network.state_dict())
    for epoch in range(1, config.max_epochs + 1):
        model.network.train()
        order = torch.randperm(len(features), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model.network(features[batch]).squeeze(1), labels[batch])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        validation_rmse = _rmse(model, validation)
        history.append({"epoch": epoch, "train_loss": total / len(order), "validation_rmse": validation_rmse})
        if validation_rmse < best_rmse:
            best_rmse, best_epoch = validation_rmse, epoch
            best_weights = copy.deepcopy(model.network.state_dict())
        elif epoch - best_epoch >= config.patience:
            break
    model.network.load_state_dict(best_weights)
    logger.info(
        "Trained %d epochs on %d rows; kept epoch %d, validation RMSE %.2f rentals/hour",
        len(history),
        len(train),
        best_epoch,
        best_rmse,
    )
    return model, history
