"""Loading: the table really comes from the installed package, with true timestamps, by month."""

from __future__ import annotations

import pandas as pd
import pytest
from bike_frames import make_hours
from kedro.io import DatasetError

from bike_rentals.datasets import BikeshareMonths
from bike_rentals.partitions import PartitionError, hours_in, partition_label, requested_months
from bike_rentals.schema import INPUTS, LABEL, LABEL_PARTS, TIMESTAMP
from bike_rentals.source import SourceMismatchError, bikeshare_table, months, with_timestamps


def test_the_package_ships_every_hour_of_2011_it_counted() -> None:
    table = bikeshare_table()
    assert table.shape == (8645, 15)
    assert {*INPUTS, LABEL, *LABEL_PARTS} <= set(table.columns)
    assert (table["casual"] + table["registered"] == table[LABEL]).all()
    # a fresh copy each call: a node that edits its input cannot change the next one's
    table.loc[0, LABEL] = -1
    assert bikeshare_table().loc[0, LABEL] != -1


def test_timestamps_are_unique_ordered_hours_of_2011() -> None:
    stamps = pd.to_datetime(with_timestamps(bikeshare_table())[TIMESTAMP])
    assert stamps.is_unique and stamps.is_monotonic_increasing
    assert stamps.min() == pd.Timestamp("2011-01-01 00:00") and stamps.max() == pd.Timestamp(
        "2011-12-31 23:00"
    )
    # 2011-03-13: clocks went forward, so 02:00 did not exist
    assert pd.Timestamp("2011-03-13 02:00") not in set(stamps)


def test_a_table_read_with_the_wrong_year_is_refused() -> None:
    raw = bikeshare_table()
    with pytest.raises(SourceMismatchError, match="weekday that 2012's calendar contradicts"):
        with_timestamps(raw, year=2012)
    with pytest.raises(SourceMismatchError, match="beyond 2011"):
        with_timestamps(
            make_hours("2011-12-30", days=3).assign(day=lambda f: f["day"] + 1).drop(columns=TIMESTAMP)
        )


def test_the_catalog_dataset_gives_one_lazy_partition_per_month() -> None:
    partitions = BikeshareMonths(year=2011).load()
    assert list(partitions) == [f"2011-{m:02d}" for m in range(1, 13)]
    january = partitions["2011-01"]()
    assert len(january) == 688 and january[TIMESTAMP].str.startswith("2011-01-").all()
    assert sum(len(load()) for load in partitions.values()) == 8645
    with pytest.raises(DatasetError, match="read-only"):
        BikeshareMonths().save({})  # type: ignore[arg-type]


def test_months_split_rows_by_their_timestamp() -> None:
    rows = pd.concat([make_hours("2011-01-30", days=2), make_hours("2011-02-01", days=1)], ignore_index=True)
    by_month = months(rows)
    assert {k: len(v) for k, v in by_month.items()} == {"2011-01": 48, "2011-02": 24}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2011-03", ["2011-03"]),
        (["2011-03", "2011-01"], ["2011-01", "2011-03"]),
        ("2011-01..2011-03", ["2011-01", "2011-02", "2011-03"]),
        ("2011-05+2011-01..2011-02", ["2011-01", "2011-02", "2011-05"]),
        ("2011-02,2011-02", ["2011-02"]),
        ("2011-11..2012-01", ["2011-11", "2011-12", "2012-01"]),
    ],
)
def test_partitions_parameter_forms(given: object, expected: list[str]) -> None:
    assert requested_months(given) == expected


@pytest.mark.parametrize("bad", ["2011-13", "2011-1", "", "2011-03..2011-01", 201101, "March"])
def test_bad_partitions_are_refused_by_name(bad: object) -> None:
    with pytest.raises(PartitionError):
        requested_months(bad)


def test_partition_labels_and_calendar_hours() -> None:
    assert partition_label(["2011-01"]) == "2011-01"
    assert partition_label(["2011-01", "2011-02", "2011-03"]) == "2011-01..2011-03"
    assert partition_label(["2011-01", "2011-03"]) == "2011-01+2011-03"
    assert hours_in(["2011-02"]) == 28 * 24 and hours_in(["2012-02"]) == 29 * 24
