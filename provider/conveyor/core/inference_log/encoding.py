"""Parquet bytes for a part of the log, and the rows that cannot be part of them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HOUR_NS = 3_600_000_000_000
# The Arrow types ``Table.from_pandas`` gives the columns the gateway logs, and the Python types
# their values may have (Arrow alone would also take a bool among floats, where pandas keeps
# objects); any other column is left to pandas, so a file never depends on the path taken.
_NONE = type(None)
_PLAIN_TYPES = {
    pa.int64(): {int, _NONE},
    pa.float64(): {float, int, _NONE},
    pa.bool_(): {bool, _NONE},
    pa.string(): {str, _NONE},
    pa.null(): {_NONE},
}


@dataclass
class Encoded:
    """One partition hour's file, ready to store; ``records`` are its rows should storage refuse it."""

    hour: pd.Timestamp
    data: bytes | None
    rows: int
    records: Callable[[], list[dict[str, Any]]]


def _table(part: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    return pa.Table.from_pandas(part.reset_index(drop=True), schema=schema, preserve_index=False)


def _parquet_bytes(table: pa.Table) -> bytes:
    """The whole file in memory, so storage gets it in one write (rename or PUT), never in pieces."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def to_parquet(part: pd.DataFrame) -> bytes:
    """``part`` as the bytes of one Parquet file. Strict: a value that cannot be encoded raises."""
    return _parquet_bytes(_table(part))


def _bisect(part: pd.DataFrame, schema: pa.Schema | None) -> tuple[list[pa.Table], dict[Any, str]]:
    """Split ``part`` until every piece encodes (to ``schema`` if given) or is one bad row.

    k bad rows among n cost O(k log n) encodings; a clean part costs one.
    """
    try:
        table = _table(part, schema)
        _parquet_bytes(table)
        return [table], {}
    except Exception as exc:  # anything encoding raises is about the data: in memory, no I/O
        if len(part) == 1:
            return [], {part.index[0]: f"cannot encode: {type(exc).__name__}: {exc}"}
    middle = len(part) // 2
    left_tables, left_dead = _bisect(part.iloc[:middle], schema)
    right_tables, right_dead = _bisect(part.iloc[middle:], schema)
    return left_tables + right_tables, {**left_dead, **right_dead}


def _common_schema(tables: list[pa.Table]) -> pa.Schema:
    """One type per column for the pieces of a split batch: promoted where Arrow can (null or int
    with float), else the type most rows have, so a single odd row does not set a column's type."""
    fields = []
    for name in tables[0].schema.names:
        typed = [(t.schema.field(name).type, t.num_rows) for t in tables]
        try:
            unified = pa.unify_schemas(
                [pa.schema([(name, kind)]) for kind, _ in typed], promote_options="permissive"
            )
            fields.append(unified.field(name))
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            rows: Counter[pa.DataType] = Counter()
            for kind, count in typed:
                rows[kind] += count
            fields.append(pa.field(name, rows.most_common(1)[0][0]))
    return pa.schema(fields)


def encode(part: pd.DataFrame) -> tuple[bytes | None, dict[Any, str]]:
    """``part`` as Parquet bytes, minus the rows that cannot be encoded (index label -> reason).

    A batch mixes many requests; one value pyarrow cannot encode (an object it does not know, a
    string among integers) must cost that row, not the batch and not every later one. The first
    split finds pieces that encode on their own; the second encodes every row to the type the
    pieces agree on, so the good rows land in one file with one schema.
    """
    try:
        return to_parquet(part), {}
    except Exception:  # the split below finds and names the bad rows
        pieces, dead = _bisect(part, None)
    if not pieces:
        return None, dead
    pieces, dead = _bisect(part, _common_schema(pieces))
    return (_parquet_bytes(pa.concat_tables(pieces)) if pieces else None), dead


def _plain_array(values: list[Any]) -> pa.Array | None:
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    allowed = _PLAIN_TYPES.get(array.type)
    if allowed is None or not allowed.issuperset(map(type, values)):
        return None
    if array.type == pa.int64() and array.null_count:
        return array.cast(pa.float64(), safe=False)  # pandas holds integers with gaps as float64 with NaN
    return array


def encode_columns(columns: dict[str, list[Any]], stamps: list[int]) -> list[Encoded] | None:
    """Plain columns (and each row's ``ts`` in ns) as one Parquet file per UTC hour, without pandas.

    The same files ``encode`` writes for the frame of these columns, at a fraction of the GIL
    time: building that frame from Python lists is what made a flush stall the gateway's event
    loop. ``None`` when a column is not one of the plain types (mixed, nested, out of range):
    the caller then takes the pandas path, which finds and sets aside the rows at fault.
    """
    arrays = []
    for values in columns.values():
        array = _plain_array(values)
        if array is None:
            return None
        arrays.append(array)
    raw = pa.array(stamps, pa.int64())
    table = pa.Table.from_arrays([*arrays, raw.cast(pa.timestamp("ns", tz="UTC"))], names=[*columns, "ts"])
    hours = pc.divide(raw, HOUR_NS)
    bounds = pc.min_max(hours)
    if bounds["min"] == bounds["max"]:
        parts = [(bounds["min"].as_py(), table)]
    else:
        parts = [(h, table.filter(pc.equal(hours, h))) for h in sorted(pc.unique(hours).to_pylist())]
    try:
        return [
            Encoded(pd.Timestamp(h * HOUR_NS, tz="UTC"), _parquet_bytes(part), part.num_rows, part.to_pylist)
            for h, part in parts
        ]
    except Exception:  # anything encoding raises is about the data: the pandas path sorts it out
        return None
