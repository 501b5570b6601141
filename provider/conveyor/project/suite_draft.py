"""A first GX suite for a project's input, drafted from what a sample of it shows.

A draft, not a judgement: it records the schema, the types, the null rates, the ranges and the
categories the sample had, so the data gate catches a changed export on day one, and the team
then tightens or loosens each rule (``meta.conveyor.draft`` says nobody has yet). Schema, types
and a non-empty table are critical (a model cannot train on them); what the values looked like
is a warning, because a sample's extremes are not the data's limits.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from conveyor.core.validation import CRITICAL, WARNING

# Columns with at most this many distinct values (and not floats) get an allowed-values rule.
MAX_CATEGORIES = 20
# A column with nulls keeps a not-null rule this much looser than the rate the sample showed.
NULL_MARGIN = 0.05
_INTS = ["int8", "int16", "int32", "int64"]
_UINTS = ["uint8", "uint16", "uint32", "uint64"]
_FLOATS = ["float16", "float32", "float64"]


class DraftError(ValueError):
    """The sample cannot give a suite (no rows, no columns, the label missing)."""


def type_names(values: Any) -> list[str]:
    """The type names GX's type-list rule accepts for this column: a width change (int32 ->
    int64) is not a schema change, integers turning into floats (nulls appeared) is. GX checks an
    object column value by value, so there the names are the Python types of its values."""
    import numpy as np

    dtype = values.dtype
    if dtype.kind == "O":
        return sorted({type(v).__name__ for v in values.dropna()}) or ["object"]
    if isinstance(dtype, np.dtype):
        return {"i": _INTS, "u": _UINTS, "f": _FLOATS}.get(dtype.kind, [str(dtype)])
    return [type(dtype).__name__]  # pandas extension dtypes: StringDtype, CategoricalDtype, ...


def draft_suite(frame: Any, name: str, label: str | None = None, source: str = "") -> dict[str, Any]:
    """The suite as GX writes it, built through GX's expectation classes."""
    import great_expectations as gx

    if len(frame.columns) == 0 or len(frame) == 0:
        raise DraftError(f"{source or name}: the sample has no rows or no columns; nothing to draft from")
    if label is not None and label not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:20]))
        raise DraftError(f"{source or name}: the label {label!r} is not a column ({columns})")
    rows = len(frame)
    E = gx.expectations
    expectations: list[Any] = [
        E.ExpectTableRowCountToBeBetween(
            min_value=1, severity=CRITICAL, notes="an empty input trains nothing"
        )
    ]
    for column in frame.columns:
        values = frame[column]
        column = str(column)
        expectations += [
            E.ExpectColumnToExist(column=column, severity=CRITICAL, notes="in the sample's schema"),
            E.ExpectColumnValuesToBeInTypeList(
                column=column,
                type_list=type_names(values),
                severity=CRITICAL,
                notes=f"the sample's type was {values.dtype}",
            ),
        ]
        expectations += _nulls(E, column, values, rows, column == label)
        expectations += _values(E, column, values, rows)
    suite = gx.ExpectationSuite(
        name=name,
        meta={
            "notes": (
                f"DRAFT by conveyor init from {rows} rows of {source or name}: review every rule, "
                "then set meta.conveyor.draft to false. critical: the run stops and nothing is "
                "trained; warning: reported only."
            ),
            "conveyor": {
                "draft": True,
                "dataset": source or name,
                "sample_rows": rows,
                "drafted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        },
        expectations=expectations,
    )
    return suite.to_json_dict()


def _nulls(E: Any, column: str, values: Any, rows: int, is_label: bool) -> list[Any]:
    """Not-null as the sample was: the label's rule is critical (a row without the truth cannot
    train), a feature's a warning; a column that had nulls keeps a margin over its rate."""
    missing = int(values.isna().sum())
    if missing == rows:
        return []  # all null in the sample: nothing to say about its rate yet
    severity = CRITICAL if is_label else WARNING
    if missing == 0:
        return [
            E.ExpectColumnValuesToNotBeNull(column=column, severity=severity, notes="no nulls in the sample")
        ]
    mostly = max(0.0, math.floor((1 - missing / rows - NULL_MARGIN) * 100) / 100)
    return [
        E.ExpectColumnValuesToNotBeNull(
            column=column,
            mostly=mostly,
            severity=severity,
            notes=f"{missing / rows:.1%} nulls in the sample; allowed up to {1 - mostly:.0%}",
        )
    ]


def _values(E: Any, column: str, values: Any, rows: int) -> list[Any]:
    import pandas as pd

    present = values.dropna()
    if present.empty:
        return []
    kind = values.dtype.kind if hasattr(values.dtype, "kind") else "O"
    if kind in "iub" or not pd.api.types.is_numeric_dtype(values.dtype):
        distinct = present.unique()
        if len(distinct) <= MAX_CATEGORIES and all(_plain(v) for v in distinct):
            return [
                E.ExpectColumnValuesToBeInSet(
                    column=column,
                    value_set=sorted((_python(v) for v in distinct), key=repr),
                    severity=WARNING,
                    notes=f"the {len(distinct)} values the sample had",
                )
            ]
    if kind in "iuf":
        low, high = _python(present.min()), _python(present.max())
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
            return [
                E.ExpectColumnValuesToBeBetween(
                    column=column,
                    min_value=low,
                    max_value=high,
                    severity=WARNING,
                    notes=f"the sample's range over {rows} rows; widen it to what the data may hold",
                )
            ]
    return []


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _plain(value: Any) -> bool:
    """A value a JSON suite can hold as itself."""
    return isinstance(_python(value), (bool, int, str))
