"""Raw hourly rows -> the numeric matrix the network reads.

Categoricals become one-hot columns over fixed vocabularies (``schema.CATEGORIES``), flags stay
0/1, and weather readings are standardised with statistics of the training rows only, kept in
the encoder so that serving transforms a request exactly as training did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bike_rentals.schema import CATEGORIES, FLAGS, INPUTS, NUMERIC

# A reading that never varied in training keeps scale 1: dividing by ~0 would blow up any
# different value at serving time into an enormous input.
_MIN_SCALE = 1e-6


class FeatureError(ValueError):
    """Rows the encoder cannot turn into numbers: a missing column or a missing value."""


@dataclass(frozen=True)
class FeatureEncoder:
    """Standardisation statistics per numeric input; the vocabularies are the schema's."""

    means: dict[str, float]
    scales: dict[str, float]

    @classmethod
    def fit(cls, rows: pd.DataFrame) -> FeatureEncoder:
        _check(rows)
        values = rows[list(NUMERIC)].astype(float)
        scales = values.std(ddof=0).fillna(1.0)
        return cls(
            means={c: float(values[c].mean()) for c in NUMERIC},
            scales={c: float(s) if s > _MIN_SCALE else 1.0 for c, s in scales.items()},
        )

    @property
    def columns(self) -> list[str]:
        """Names of the encoded columns, in matrix order."""
        one_hot = [f"{name}={level}" for name, levels in CATEGORIES.items() for level in levels]
        return [*one_hot, *FLAGS, *NUMERIC]

    def transform(self, rows: pd.DataFrame) -> np.ndarray:
        """``float32`` matrix, one row per input row; a level outside the vocabulary is all zeros."""
        _check(rows)
        blocks = []
        for name, levels in CATEGORIES.items():
            codes = pd.Categorical(_as_levels(rows[name], levels), categories=levels).codes
            one_hot = np.zeros((len(rows), len(levels)), dtype=np.float32)
            known = codes >= 0
            one_hot[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(one_hot)
        blocks.append(rows[list(FLAGS)].to_numpy(dtype=np.float32))
        numeric = rows[list(NUMERIC)].to_numpy(dtype=np.float64)
        means = np.array([self.means[c] for c in NUMERIC])
        scales = np.array([self.scales[c] for c in NUMERIC])
        blocks.append(((numeric - means) / scales).astype(np.float32))
        return np.concatenate(blocks, axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {"means": dict(self.means), "scales": dict(self.scales)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEncoder:
        return cls(means=dict(data["means"]), scales=dict(data["scales"]))


def _as_levels(values: pd.Series, levels: tuple) -> pd.Series:
    """Integer vocabularies accept 3, 3.0 and "3" alike (JSON and CSV clients differ)."""
    if isinstance(levels[0], str):
        return values.astype(str)
    return pd.to_numeric(values, errors="coerce")


def _check(rows: pd.DataFrame) -> None:
    missing = [c for c in INPUTS if c not in rows.columns]
    if missing:
        raise FeatureError(f"input rows lack the columns {missing}")
    empty = [c for c in INPUTS if rows[c].isna().any()]
    if empty:
        raise FeatureError(f"input rows have missing values in {empty}")
