"""Nodes of ``data_processing``; thin over ``flight_delays.data``/``features`` and the core gate."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from conveyor.core.lineage import content_hash
from conveyor.core.validation import ValidationReport, row_count_bounds, validate_frame
from flight_delays.data import join_weather, parse_partition, partition_label, select_months
from flight_delays.features import build_features, split_by_time

logger = logging.getLogger(__name__)


def select_partition(flights: Mapping[str, Callable[[], pd.DataFrame]], partition: str) -> pd.DataFrame:
    rows = select_months(flights, partition)
    logger.info("Partition %s: %d flights", partition_label(parse_partition(partition)), len(rows))
    return rows


def gate_parameters(
    flights: Mapping[str, Callable[[], pd.DataFrame]], partition: str, params: dict[str, Any]
) -> dict[str, Any]:
    """What the flights suite cannot know by itself: which months were asked for, and how many
    rows a month had before (the partitions the pipeline reads, so no count is kept by hand).

    Only months before the first requested one count, at most ``history_months`` of them.
    """
    months = parse_partition(partition)
    earlier = [m for m in sorted(flights) if m < months[0]][-int(params["history_months"]) :]
    low, high = row_count_bounds(
        [len(flights[m]()) for m in earlier],
        len(months),
        low=float(params["row_count_low"]),
        high=float(params["row_count_high"]),
        minimum=int(params["min_rows_per_month"]),
    )
    return {
        "row_count_min": low,
        "row_count_max": high,
        "partition_years": sorted({int(m[:4]) for m in months}),
        "partition_months": sorted({int(m[5:]) for m in months}),
        "history": earlier,
    }


def validate_partition(
    flights: pd.DataFrame,
    weather: pd.DataFrame,
    flights_suite: dict[str, Any],
    weather_suite: dict[str, Any],
    parameters: dict[str, Any],
    partition: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The data gate: each source table against its own suite, one verdict; warnings are
    logged, a critical failure raises ``DataValidationError``.

    Weather is checked at its own grain (the partition's months), not after the join: a broken
    reading in an hour without flights still says that the feed is broken. The flights pass
    through so that everything downstream depends on the gate having passed.
    """
    label = partition_label(parse_partition(partition))
    logger.info(
        "Row count bounds %s..%s from earlier months %s",
        parameters["row_count_min"],
        parameters["row_count_max"],
        ", ".join(parameters["history"]) or "(none)",
    )
    in_months = weather.set_index(["year", "month"]).index.isin(
        [(int(m[:4]), int(m[5:])) for m in parse_partition(partition)]
    )
    report = ValidationReport.combine(
        [
            validate_frame(flights, flights_suite, dataset=f"flights {label}", parameters=parameters),
            validate_frame(weather[in_months], weather_suite, dataset=f"weather {label}"),
        ]
    )
    logger.log(logging.INFO if report.success else logging.ERROR, "%s", report.to_text())
    report.raise_for_critical()
    return flights, report.to_dict()


def describe_partition(flights: pd.DataFrame, partition: str) -> dict[str, Any]:
    """Lineage of the input: a hash over every row, so two runs can tell whether they saw the same data."""
    return {
        "partition": partition_label(parse_partition(partition)),
        "data_hash": content_hash(flights),
        "rows": len(flights),
    }


def build_model_input(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    model_input = build_features(join_weather(flights, weather))
    logger.info(
        "Model input: %d labelled rows of %d flights, delayed rate %.3f",
        len(model_input),
        len(flights),
        model_input["delayed"].mean() if len(model_input) else float("nan"),
    )
    return model_input


def split_model_input(
    model_input: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    # Runtime params from an Airflow template may arrive as strings ("3000", "None").
    max_rows = None if str(params["max_rows"]) in ("None", "") else int(params["max_rows"])
    splits = split_by_time(
        model_input,
        validation_fraction=float(params["validation_fraction"]),
        test_fraction=float(params["test_fraction"]),
        max_rows=max_rows,
        seed=int(params["seed"]),
    )
    logger.info(
        "Split by time: %d train, %d validation, %d held-out rows",
        len(splits.train),
        len(splits.validation),
        len(splits.test),
    )
    return splits.train, splits.validation, splits.test


def sample_reference(train: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Training rows kept for drift detection: what the model considers normal input."""
    rows = min(len(train), int(params["reference_sample_rows"]))
    return train.sample(n=rows, random_state=int(params["seed"])).sort_index().reset_index(drop=True)
