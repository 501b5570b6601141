"""Parquet bytes for a part of the log, and the rows that cannot be part of them."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


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
