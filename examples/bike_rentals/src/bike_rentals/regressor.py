"""The demand model: feature encoder + a small torch MLP, predicting rentals per hour.

The network learns ``log1p(bikers)``, standardised: hourly counts are skewed (night hours near
zero, rush hours in the hundreds), and on the log scale an error of 20 at 3 a.m. is not drowned
out by the same error at 5 p.m. ``predict`` answers on the count scale, never below zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from bike_rentals.features import FeatureEncoder


def build_network(inputs: int, hidden_units: list[int], dropout: float) -> nn.Sequential:
    """ReLU layers of ``hidden_units`` with dropout, one linear output."""
    layers: list[nn.Module] = []
    width = inputs
    for units in hidden_units:
        layers += [nn.Linear(width, int(units)), nn.ReLU(), nn.Dropout(float(dropout))]
        width = int(units)
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class TargetScale:
    """``log1p`` of the count, then standardised with the training rows' mean and spread."""

    mean: float
    scale: float

    @classmethod
    def fit(cls, counts: np.ndarray) -> TargetScale:
        logs = np.log1p(np.asarray(counts, dtype=np.float64))
        return cls(mean=float(logs.mean()), scale=float(logs.std()) or 1.0)

    def encode(self, counts: np.ndarray) -> np.ndarray:
        return ((np.log1p(np.asarray(counts, dtype=np.float64)) - self.mean) / self.scale).astype(np.float32)

    def decode(self, values: np.ndarray) -> np.ndarray:
        # Clipped on the log scale first: an untrained or diverged net must not overflow expm1.
        logs = np.clip(np.asarray(values, dtype=np.float64) * self.scale + self.mean, 0.0, 20.0)
        return np.expm1(logs)


class DemandRegressor:
    """Everything ``predict`` needs, saved and loaded as one file of tensors and plain values."""

    def __init__(
        self,
        encoder: FeatureEncoder,
        target: TargetScale,
        network: nn.Sequential,
        architecture: dict[str, Any],
    ) -> None:
        self.encoder = encoder
        self.target = target
        self.network = network
        self.architecture = architecture

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Expected rentals in each row's hour (float, >= 0)."""
        matrix = torch.from_numpy(self.encoder.transform(rows))
        self.network.eval()
        with torch.no_grad():
            values = self.network(matrix).squeeze(1).numpy()
        return self.target.decode(values)

    def save(self, path: Path) -> None:
        torch.save(
            {
                "encoder": self.encoder.to_dict(),
                "target": {"mean": self.target.mean, "scale": self.target.scale},
                "architecture": self.architecture,
                "weights": self.network.state_dict(),
            },
            path,
        )

    @classmethod
    def load(cls, path: Path) -> DemandRegressor:
        state = torch.load(path, weights_only=True)
        architecture = state["architecture"]
        network = build_network(**architecture)
        network.load_state_dict(state["weights"])
        return cls(
            FeatureEncoder.from_dict(state["encoder"]), TargetScale(**state["target"]), network, architecture
        )
