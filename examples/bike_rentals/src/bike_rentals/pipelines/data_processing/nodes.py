"""Nodes of ``data_processing``: choose the months, gate them, shape and split the rows."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from bike_rentals.partitions import PartitionError, hours_in, partition_label, requested_months
from bike_rentals.schema import CATEGORIES, INPUTS, LABEL, TIMESTAMP
from bike_rentals.splits import split_by_time
from conveyor.core.lineage import content_hash
from conveyor.core.validation import validate_frame

logger = logging.getLogger(__name__)

# The table's month names, by month number (``schema.CATEGORIES["mnth"]`` is in calendar order).
_MONTH_NAMES = dict(enumerate(CATEGORIES["mnth"], start=1))


def select_partitions(bikeshare: Mapping[str, Callable[[], pd.DataFrame]], partitions: Any) -> pd.DataFrame:
    """The requested months' rows, in time order; a month the source lacks is an error, not a gap."""
    months = requested_months(partitions)
    missing = [m for m in months if m not in bikeshare]
    if missing:
        have = sorted(bikeshare)
        raise PartitionError(
            f"no data for {', '.join(missing)}; the source has {have[0]}..{have[-1]}"
            if have
            else f"no data for {', '.join(missing)}; the source is empty"
        )
    rows = pd.concat([bikeshare[m]() for m in months], ignore_index=True)
    logger.info("Partition %s: %d hourly rows", partition_label(months), len(rows))
    return rows


def gate_parameters(partitions: Any, params: dict[str, Any]) -> dict[str, Any]:
    """What the suite cannot know alone: the requested months, and how many hours they have.

    An hourly table holds at most one row per calendar hour; hours without a row are outages of
    the counting system. Fewer than ``min_hour_coverage`` of the hours means a broken feed
    (critical); fewer than ``expected_hour_coverage`` is reported.
    """
    months = requested_months(partitions)
    hours = hours_in(months)
    return {
        "row_count_max": hours,
        "row_count_min": int(hours * float(params["min_hour_coverage"])),
        "row_count_expected_min": int(hours * float(params["expected_hour_coverage"])),
        "partition_month_names": sorted({_MONTH_NAMES[int(m[5:])] for m in months}),
        "partition_timestamp_regex": "^(?:" + "|".join(months) + ")-",
    }


def validate_partition(
    rows: pd.DataFrame, suite: dict[str, Any], parameters: dict[str, Any], partitions: Any
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The data gate: the suite on the raw rows; warnings are logged, a critical failure stops
    the run with ``DataValidationError`` before anything trains. The rows pass through, so every
    later node depends on the gate having passed."""
    label = partition_label(requested_months(partitions))
    report = validate_frame(rows, suite, dataset=f"bikeshare {label}", parameters=parameters)
    logger.log(logging.INFO if report.success else logging.ERROR, report.to_text())
    report.raise_for_critical()
    return rows, report.to_dict()


def describe_partition(rows: pd.DataFrame, partitions: Any) -> dict[str, Any]:
    """Lineage of the input: which months, and a hash over every row to tell whether two runs
    saw the same data."""
    return {
        "partition": partition_label(requested_months(partitions)),
        "data_hash": content_hash(rows),
        "rows": len(rows),
    }


def build_model_input(rows: pd.DataFrame) -> pd.DataFrame:
    """Timestamp, model inputs and label of every hour that has them all.

    An hour missing a reading or its count cannot be learnt from; the gate has already bounded
    how many such hours a partition may have, so here they are only counted and dropped.
    """
    columns = [TIMESTAMP, *INPUTS, LABEL]
    model_input = rows[columns].dropna().reset_index(drop=True)
    dropped = len(rows) - len(model_input)
    if dropped:
        logger.warning("Dropped %d of %d hours with a missing input or label", dropped, len(rows))
    return model_input


def split_hours(
    rows: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train, validation and held-out hours, in that order of time (``bike_rentals.splits``)."""
    splits = split_by_time(rows, float(params["validation_fraction"]), float(params["test_fraction"]))
    logger.info(
        "Split by time: %d train (to %s), %d validation, %d held-out hours (from %s)",
        len(splits.train),
        splits.train[TIMESTAMP].iloc[-1],
        len(splits.validation),
        len(splits.test),
        splits.test[TIMESTAMP].iloc[0],
    )
    return (splits.train, splits.validation, splits.test)


def model_view(rows: pd.DataFrame) -> pd.DataFrame:
    """Raw inputs and label only: what a client sends and what feedback reports, nothing else."""
    return rows[[*INPUTS, LABEL]].reset_index(drop=True)


def reference_rows(train: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Training hours kept for drift detection (raw inputs + label): what the model knows as normal."""
    size = min(len(train), int(params["reference_sample_rows"]))
    sample = train.sample(n=size, random_state=int(params["seed"])).sort_index()
    return model_view(sample)
