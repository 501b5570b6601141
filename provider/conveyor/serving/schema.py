"""MLflow scoring-protocol payloads parsed into plain columns, checked against the model signature.

The gateway works on ``{column: list}`` instead of a DataFrame per request: parsing and checking
a few Python lists costs microseconds, and the one DataFrame per micro-batch is built from lists
of already-checked values with the signature's dtypes (``InputSchema.frame``). That is the fast
path: MLflow's own schema enforcement can then be skipped, because it would redo the same work.
"""

from __future__ import annotations

import math
import reprlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PROTOCOL_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
Columns = dict[str, list[Any]]
_MISSING = object()  # a key absent from one record of "dataframe_records": not the same as null
# String values (features, column names) end up in the inference log: a client must not be able
# to write megabytes per cell, nor text that is not Unicode (a lone surrogate cannot be encoded).
MAX_STRING_BYTES = 1024


class InvalidInput(ValueError):
    """A request the gateway refuses (HTTP 422); ``field`` names the field or column at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 2, 4, 4, 40, 40
    return short


_SHORT = _short_repr()


def preview(value: Any, limit: int = 40) -> str:
    """A bounded repr for error messages: a hostile value (huge, deeply nested) is never echoed whole."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def string_problem(value: str, max_bytes: int) -> str | None:
    """Why a client string may not be logged (too long, not Unicode), or None when it may."""
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            return "holds a lone surrogate (not valid Unicode)"
    if size > max_bytes:
        return f"is {size} bytes long, over the limit of {max_bytes} bytes"
    return None


def _records_to_columns(records: list[Any], where: str) -> Columns:
    if not records:
        raise InvalidInput(f"'{where}' holds no rows")
    names: list[str] = []
    for record in records:
        if not isinstance(record, dict):
            raise InvalidInput(
                f"'{where}' must be a list of objects (one per row), found {type(record).__name__}"
            )
        for name in record:
            if name not in names:
                names.append(name)
    return {name: [record.get(name, _MISSING) for record in records] for name in names}


def parse_payload(body: Any, column_order: list[str] | None) -> tuple[Columns, int]:
    """Columns and row count of one scoring request in any of MLflow's four JSON shapes."""
    if not isinstance(body, dict):
        raise InvalidInput(f"the body must be a JSON object with exactly one of {list(PROTOCOL_KEYS)}")
    keys = [key for key in PROTOCOL_KEYS if key in body]
    extra = sorted(set(body) - set(PROTOCOL_KEYS) - {"params"})
    if len(keys) != 1 or extra:
        raise InvalidInput(
            f"the body must be a JSON object with exactly one of {list(PROTOCOL_KEYS)}, "
            f"got keys {sorted(body)}"
        )
    key = keys[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("columns"), list):
            raise InvalidInput("'dataframe_split' must be an object with 'columns' and 'data'")
        names, data = value["columns"], value.get("data")
        if not all(isinstance(name, str) for name in names):
            raise InvalidInput(
                "'dataframe_split.columns' must be a list of strings", field="dataframe_split.columns"
            )
        if not isinstance(data, list) or not data:
            raise InvalidInput("'dataframe_split.data' must be a non-empty list of rows")
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(names):
                raise InvalidInput(f"'dataframe_split.data' row {i} does not have {len(names)} values")
        columns = {name: [row[j] for row in data] for j, name in enumerate(names)}
    elif key == "dataframe_records":
        if not isinstance(value, list):
            raise InvalidInput("'dataframe_records' must be a list of objects")
        columns = _records_to_columns(value, key)
    elif isinstance(value, dict):  # columnar "inputs"/"instances": {column: [values]}
        columns = {str(name): vals if isinstance(vals, list) else [vals] for name, vals in value.items()}
        if not columns:
            raise InvalidInput(f"'{key}' holds no columns")
    elif isinstance(value, list) and value and all(isinstance(row, list) for row in value):
        if column_order is None or any(len(row) != len(column_order) for row in value):
            raise InvalidInput(
                f"'{key}' rows as lists need exactly the signature's columns in order: {column_order}"
            )
        columns = {name: [row[j] for row in value] for j, name in enumerate(column_order)}
    elif isinstance(value, list):
        columns = _records_to_columns(value, key)
    else:
        raise InvalidInput(f"'{key}' must be a list of rows or an object of columns")
    lengths = {len(vals) for vals in columns.values()}
    if len(lengths) != 1:
        raise InvalidInput(f"columns have different lengths {sorted(lengths)}")
    rows = lengths.pop()
    if rows == 0:
        raise InvalidInput(f"'{key}' holds no rows")
    return columns, rows


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_number(v: Any) -> bool:
    return type(v) in (int, float)


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_bool(v: Any) -> bool:
    return type(v) is bool


Limit = Callable[[Any, int], str | None]  # (value of the right JSON type, max string bytes) -> problem
# (a column's values, max string bytes) -> True when every value is certainly valid. Built from
# C-level builtins (map, set, min, max, sum): a 2,048-row batch is checked in about the time the
# type checks alone took, and only a column that fails it is walked value by value for the message.
Quick = Callable[[list[Any], int], bool]
_QUICK_FROM = 8  # below this many values the walk is cheaper than the builtins' fixed cost (~1.5 us)
_NONE = type(None)


def _int_range(bits: int) -> Limit:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def check(value: int, _: int) -> str | None:
        return None if low <= value <= high else f"is out of range for a {bits}-bit integer"

    return check


def _quick_ints(bits: int) -> Quick:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def quick(values: list[Any], _: int) -> bool:
        return set(map(type, values)) == {int} and low <= min(values) and max(values) <= high

    return quick


def _float_range(largest: float, bits: int) -> Limit:
    """Finite and representable: 1e400 parses as inf, 1e39 turns into inf in a float32 column."""

    def check(value: float, _: int) -> str | None:
        if -largest <= value <= largest:
            return None
        if isinstance(value, float) and math.isnan(value):
            return "is NaN; send null for a missing value"
        return f"is out of range for a {bits}-bit float (send a finite number)"

    return check


def _quick_floats(largest: float) -> Quick:
    def quick(values: list[Any], _: int) -> bool:
        types = set(map(type, values))
        if not types <= {float, int, _NONE}:
            return False
        numbers = [v for v in values if v is not None] if _NONE in types else values
        try:  # a NaN or inf makes the sum non-finite; a sum that overflows just takes the slow path
            return not numbers or (
                math.isfinite(sum(numbers)) and -largest <= min(numbers) and max(numbers) <= largest
            )
        except OverflowError:  # an int too large for a float
            return False

    return quick


def _quick_strings(values: list[Any], max_bytes: int) -> bool:
    return (
        set(map(type, values)) == {str}
        and all(map(str.isascii, values))
        and max(map(len, values)) <= max_bytes
    )


def _quick_bools(values: list[Any], _: int) -> bool:
    return set(map(type, values)) == {bool}


def _no_limit(value: Any, _: int) -> str | None:
    return None


@dataclass(frozen=True)
class _Kind:
    """How one MLflow column type is checked and stored."""

    accepts: Callable[[Any], bool]
    json_type: str  # named in errors
    dtype: Any
    nullable: bool
    limit: Limit
    quick: Quick


_FLOAT64_MAX, _FLOAT32_MAX = sys.float_info.max, float(np.finfo(np.float32).max)
_TYPES: dict[str, _Kind] = {
    "long": _Kind(_is_int, "integer", np.int64, False, _int_range(64), _quick_ints(64)),
    "integer": _Kind(_is_int, "integer", np.int32, False, _int_range(32), _quick_ints(32)),
    "double": _Kind(
        _is_number, "number", np.float64, True, _float_range(_FLOAT64_MAX, 64), _quick_floats(_FLOAT64_MAX)
    ),
    "float": _Kind(
        _is_number, "number", np.float32, True, _float_range(_FLOAT32_MAX, 32), _quick_floats(_FLOAT32_MAX)
    ),
    "string": _Kind(_is_str, "string", object, False, string_problem, _quick_strings),
    "boolean": _Kind(_is_bool, "boolean", bool, False, _no_limit, _quick_bools),
}
# Models without a column signature: JSON scalars still get the limits of the widest column type.
_FREE_LIMITS: dict[type, Limit] = {
    int: _TYPES["long"].limit,
    float: _TYPES["double"].limit,
    str: _TYPES["string"].limit,
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool


class InputSchema:
    """The column part of an MLflow signature, as checks the gateway runs on each request."""

    def __init__(self, fields: list[Field]) -> None:
        unsupported = [f"{f.name}: {f.type}" for f in fields if f.type not in _TYPES]
        if unsupported:
            raise ValueError(f"the gateway cannot check column types {unsupported}")
        self.fields = fields
        self.names = [f.name for f in fields]
        self._by_name = {f.name: f for f in fields}

    @classmethod
    def from_mlflow(cls, schema: Any) -> InputSchema | None:
        """From ``model.metadata.get_input_schema()``; None for models without a column signature."""
        if schema is None or not schema.has_input_names() or schema.is_tensor_spec():
            return None
        return cls([Field(spec.name, spec.type.name, spec.required) for spec in schema.inputs])

    def validate(self, columns: Columns, max_string_bytes: int = MAX_STRING_BYTES) -> None:
        """Raise ``InvalidInput`` naming the first offending field; values are left as sent.

        Besides the JSON type, each value must fit its column's dtype (an int64, a finite float32,
        a string of at most ``max_string_bytes``): what fails here would otherwise fail later, as
        a server error in ``frame`` or as a row the inference log cannot write.
        """
        for name in columns:
            if name not in self._by_name:
                raise InvalidInput(
                    f"unknown field {preview(name)}; the model takes {self.names}", field=name[:64]
                )
        for spec in self.fields:
            values = columns.get(spec.name)
            if values is None:
                if spec.required:
                    raise InvalidInput(f"missing required field '{spec.name}' ({spec.type})", field=spec.name)
                continue
            kind = _TYPES[spec.type]
            if len(values) >= _QUICK_FROM and kind.quick(values, max_string_bytes):
                continue
            for row, value in enumerate(values):
                if value is _MISSING or (value is None and not kind.nullable):
                    raise InvalidInput(f"field '{spec.name}' row {row}: value missing", field=spec.name)
                if value is None:
                    continue
                if not kind.accepts(value):
                    raise InvalidInput(
                        f"field '{spec.name}' row {row}: expected {kind.json_type} ({spec.type}), "
                        f"got {type(value).__name__} {preview(value)}",
                        field=spec.name,
                    )
                problem = kind.limit(value, max_string_bytes)
                if problem is not None:
                    raise InvalidInput(
                        f"field '{spec.name}' row {row}: {preview(value)} {problem}", field=spec.name
                    )

    def frame(self, columns: Columns, rows: int) -> pd.DataFrame:
        """One DataFrame with the signature's dtypes from validated columns (absent optional -> NaN/None)."""
        data = {}
        for spec in self.fields:
            values = columns.get(spec.name)
            dtype = _TYPES[spec.type].dtype
            if values is None:
                data[spec.name] = (
                    np.full(rows, np.nan) if dtype in (np.float64, np.float32) else [None] * rows
                )
            else:
                data[spec.name] = np.asarray(values, dtype=dtype)
        return pd.DataFrame(data)


def validate_free(columns: Columns, max_string_bytes: int = MAX_STRING_BYTES) -> None:
    """The limits that hold without a signature: names and scalar values that can be logged."""
    for name, values in columns.items():
        problem = string_problem(name, max_string_bytes)
        if problem is not None:
            raise InvalidInput(f"column name {preview(name)} {problem}", field=name[:64])
        for row, value in enumerate(values):
            limit = _FREE_LIMITS.get(type(value))
            problem = limit(value, max_string_bytes) if limit is not None else None
            if problem is not None:
                raise InvalidInput(
                    f"field {preview(name)} row {row}: {preview(value)} {problem}", field=name[:64]
                )


def frame_without_schema(columns: Columns) -> pd.DataFrame:
    """Models without a signature get what pandas infers, as ``mlflow models serve`` would do."""
    return pd.DataFrame(
        {name: [None if v is _MISSING else v for v in vals] for name, vals in columns.items()}
    )
