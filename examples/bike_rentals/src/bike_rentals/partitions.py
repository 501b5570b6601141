"""Which months a run trains on: the ``partitions`` parameter, read strictly.

Accepted: a list of months (``["2011-01", "2011-02"]``), or text naming months (``"2011-01"``),
ranges (``"2011-01..2011-03"``) or both, separated by ``+`` or ``,``. ``+`` is for the command
line, where ``kedro run --params`` splits on commas; Airflow passes text from a template.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

import pandas as pd

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class PartitionError(ValueError):
    """The ``partitions`` parameter names no month, an invalid one, or a backwards range."""


def _month(text: str) -> pd.Period:
    if not _MONTH.match(text):
        raise PartitionError(f"partition {text!r} is not a month written YYYY-MM")
    return pd.Period(text, freq="M")


def _expand(item: str) -> list[str]:
    first, sep, last = item.partition("..")
    if not sep:
        return [str(_month(item))]
    start, end = _month(first.strip()), _month(last.strip())
    if end < start:
        raise PartitionError(f"range {item!r} ends before it starts")
    return [str(p) for p in pd.period_range(start, end, freq="M")]


def requested_months(partitions: Any) -> list[str]:
    """The months asked for, sorted and without repeats."""
    if isinstance(partitions, str):
        items = re.split(r"[+,]", partitions)
    elif isinstance(partitions, list | tuple):
        items = [str(p) for p in partitions]
    else:
        raise PartitionError(f"partitions must be text or a list of months, got {type(partitions).__name__}")
    picked = {month for item in items if item.strip() for month in _expand(item.strip())}
    if not picked:
        raise PartitionError(f"partitions {partitions!r} names no month")
    return sorted(picked)


def partition_label(months: list[str]) -> str:
    """One name for a set of months: ``2011-01``; ``2011-01..2011-03`` when consecutive; else ``+``-joined."""
    periods = [pd.Period(m, freq="M") for m in months]
    consecutive = all((b - a).n == 1 for a, b in pairwise(periods))
    if len(months) > 1 and consecutive:
        return f"{months[0]}..{months[-1]}"
    return "+".join(months)


def hours_in(months: list[str]) -> int:
    """Calendar hours of the months: the most rows an hourly table can hold for them."""
    return int(sum(pd.Period(m, freq="M").days_in_month * 24 for m in months))
