"""The torch tabular classifier and the preprocessing that travels with it.

Everything a served model needs to turn raw feature rows into probabilities lives in
``FlightDelayClassifier``: category vocabularies, imputation values, scales and the weights.
It is saved as one plain ``torch.save`` dict, loadable with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from flight_delays.schema import CATEGORICAL, NUMERIC

UNKNOWN = 0  # embedding row for categories not seen in training


class TabularNet(nn.Module):
    """Embeddings for carrier/origin/dest, concatenated with standardized numerics, then an MLP."""

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_numeric: int,
        embedding_dim: int,
        hidden_units: Sequence[int],
        dropout: float,
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(card, embedding_dim) for card in cardinalities)
        layers: list[nn.Module] = []
        width = embedding_dim * len(cardinalities) + n_numeric
        for units in hidden_units:
            layers += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(dropout)]
            width = units
        head = nn.Linear(width, 1)
        # A zero head starts every model as a constant predictor: whatever ranking it ends up with
        # was learned from the labels, not inherited from a lucky or unlucky random init.
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        layers.append(head)
        self.mlp = nn.Sequential(*layers)

    def forward(self, categories: torch.Tensor, numerics: torch.Tensor) -> torch.Tensor:
        embedded = [emb(categories[:, j]) for j, emb in enumerate(self.embeddings)]
        return self.mlp(torch.cat([*embedded, numerics], dim=1)).squeeze(1)


@dataclass
class Preprocessing:
    """Fitted on training rows only, so validation and serving see the same transformation."""

    vocab: dict[str, dict[str, int]]
    means: np.ndarray
    scales: np.ndarray

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> Preprocessing:
        vocab = {
            col: {value: i + 1 for i, value in enumerate(sorted(frame[col].astype(str).unique()))}
            for col in CATEGORICAL
        }
        numerics = frame[list(NUMERIC)].to_numpy(dtype=np.float64)
        means = np.nanmean(numerics, axis=0)
        means = np.where(np.isnan(means), 0.0, means)
        scales = np.nanstd(numerics, axis=0)
        scales = np.where(np.isnan(scales) | (scales < 1e-9), 1.0, scales)
        return cls(vocab, means.astype(np.float32), scales.astype(np.float32))

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Integer category codes and imputed, standardized numerics.

        Column-wise numpy on purpose: the gateway calls this for single rows, where building
        intermediate DataFrames would cost more than the network itself.
        """
        n = len(frame)
        codes = np.empty((n, len(CATEGORICAL)), dtype=np.int64)
        for j, col in enumerate(CATEGORICAL):
            lookup = self.vocab[col]
            codes[:, j] = [lookup.get(str(v), UNKNOWN) for v in frame[col].tolist()]
        numerics = np.empty((n, len(NUMERIC)), dtype=np.float32)
        for j, col in enumerate(NUMERIC):
            numerics[:, j] = np.asarray(frame[col].to_numpy(), dtype=np.float32)
        missing = np.isnan(numerics)
        if missing.any():
            numerics[missing] = np.broadcast_to(self.means, numerics.shape)[missing]
        numerics -= self.means
        numerics /= self.scales
        return codes, numerics


def _build_net(prep: Preprocessing, config: dict[str, Any]) -> TabularNet:
    return TabularNet(
        cardinalities=[len(prep.vocab[col]) + 1 for col in CATEGORICAL],
        n_numeric=len(NUMERIC),
        embedding_dim=int(config["embedding_dim"]),
        hidden_units=[int(u) for u in config["hidden_units"]],
        dropout=float(config["dropout"]),
    )


@dataclass
class FlightDelayClassifier:
    """``threshold``: the probability from which a flight is answered ``delayed=1``, chosen on the
    validation split by training (``flight_delays.decision``) and saved with the weights;
    ``threshold_rule`` says how it was chosen."""

    preprocessing: Preprocessing
    net: TabularNet
    config: dict[str, Any]
    threshold: float = 0.5
    threshold_rule: str = "fixed"

    @classmethod
    def create(cls, train: pd.DataFrame, config: dict[str, Any]) -> FlightDelayClassifier:
        prep = Preprocessing.fit(train)
        return cls(prep, _build_net(prep, config), dict(config))

    def tensors(self, frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        codes, numerics = self.preprocessing.transform(frame)
        return torch.from_numpy(codes), torch.from_numpy(numerics)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities of ``delayed``; the net must be in eval mode (as after training or loading)."""
        codes, numerics = self.tensors(frame)
        with torch.inference_mode():
            return torch.sigmoid(self.net(codes, numerics)).numpy().astype(np.float64)

    def state(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "vocab": self.preprocessing.vocab,
            "means": self.preprocessing.means.tolist(),
            "scales": self.preprocessing.scales.tolist(),
            "state_dict": self.net.state_dict(),
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FlightDelayClassifier:
        prep = Preprocessing(
            vocab=state["vocab"],
            means=np.asarray(state["means"], dtype=np.float32),
            scales=np.asarray(state["scales"], dtype=np.float32),
        )
        config = state["config"]
        net = _build_net(prep, config)
        net.load_state_dict(state["state_dict"])
        net.eval()
        # Versions registered before thresholds were chosen kept theirs in the config: a champion
        # of that time must still load, or no candidate could be compared with it.
        threshold = state.get("threshold", config.get("decision_threshold", 0.5))
        return cls(prep, net, config, float(threshold), state.get("threshold_rule", "fixed"))

    def save(self, path: Path) -> None:
        torch.save(self.state(), path)

    @classmethod
    def load(cls, path: Path) -> FlightDelayClassifier:
        return cls.from_state(torch.load(path, weights_only=True))
