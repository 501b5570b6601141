"""Kedro datasets of the project: the package's bike-sharing table by month, and the model file.

``BikeshareMonths`` loads like ``partitions.PartitionedDataset`` (partition id -> load function),
so a catalog can point ``bikeshare`` at a folder of monthly files instead and no node changes.
``DemandRegressorDataset`` stores the model as tensors and plain values (``DemandRegressor.save``),
the file the MLflow model carries too, rather than a pickle that runs code when loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from bike_rentals.regressor import DemandRegressor
from bike_rentals.source import SOURCE_YEAR, bikeshare_table, months, with_timestamps


def _month(key: str, year: int) -> pd.DataFrame:
    return months(with_timestamps(bikeshare_table(), year))[key]


class BikeshareMonths(AbstractDataset[None, dict[str, Callable[[], pd.DataFrame]]]):
    """The hours of ``year`` by month (``"2011-01"``...), each loaded on demand."""

    def __init__(self, year: int = SOURCE_YEAR) -> None:
        self._year = int(year)

    def load(self) -> dict[str, Callable[[], pd.DataFrame]]:
        keys = sorted(months(with_timestamps(bikeshare_table(), self._year)))
        return {key: partial(_month, key, self._year) for key in keys}

    def save(self, data: None) -> None:
        raise DatasetError("the bike-sharing table of the scatter_smooth package is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"source": "scatter_smooth package, data/bikeshare.csv", "year": self._year}


class DemandRegressorDataset(AbstractDataset[DemandRegressor, DemandRegressor]):
    """The trained regressor as one ``torch.save`` file of weights and statistics."""

    def __init__(self, filepath: str) -> None:
        self._path = Path(filepath)

    def load(self) -> DemandRegressor:
        return DemandRegressor.load(self._path)

    def save(self, data: DemandRegressor) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        data.save(self._path)

    def _exists(self) -> bool:
        return self._path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}
