"""MLflow scoring-protocol payloads parsed into plain columns, checked against the model signature.

The gateway works on ``{column: list}`` instead of a DataFrame per request: parsing and checking
a few Python lists costs microseconds, and the one DataFrame per micro-batch is built from lists
of already-checked values with the signature's dtypes (``InputSchema.frame``). That is the fast
path: MLflow's own schema enforcement can then be skipped, because it would redo the same work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PROTOCOL_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
Columns = dict[str, list[Any]]
_MISSING = object()  # a key absent from one record of "dataframe_records": not the same as null


class InvalidInput(ValueError):
    """A request the model cannot take; ``field`` names the column at fault (HTTP 422)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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
        if not isinstance(data, list) or not data:
            raise InvalidInput("'dataframe_split.data' must be a non-empty list of rows")
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(names):
                raise InvalidInput(f"'dataframe_split.data' row {i} does not have {len(names)} values")
        columns = {str(name): [row[j] for row in data] for j, name in enumerate(names)}
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
    return columns, lengths.pop()


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_number(v: Any) -> bool:
    return type(v) in (int, float)


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_bool(v: Any) -> bool:
    return type(v) is bool


# MLflow DataType name -> (accepts a JSON value, JSON type named in errors, dtype, null allowed)
_TYPES: dict[str, tuple[Callable[[Any], bool], str, Any, bool]] = {
    "long": (_is_int, "integer", np.int64, False),
    "integer": (_is_int, "integer", np.int32, False),
    "double": (_is_number, "number", np.float64, True),
    "float": (_is_number, "number", np.float32, True),
    "string": (_is_str, "string", object, False),
    "boolean": (_is_bool, "boolean", bool, False),
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

    def validate(self, columns: Columns) -> None:
        """Raise ``InvalidInput`` naming the first offending field; values are left as sent."""
        for name in columns:
            if name not in self._by_name:
                raise InvalidInput(f"unknown field '{name}'; the model takes {self.names}", field=name)
        for spec in self.fields:
            values = columns.get(spec.name)
            if values is None:
                if spec.required:
                    raise InvalidInput(f"missing required field '{spec.name}' ({spec.type})", field=spec.name)
                continue
            accepts, json_type, _, nullable = _TYPES[spec.type]
            for row, value in enumerate(values):
                if value is _MISSING or (value is None and not nullable):
                    raise InvalidInput(f"field '{spec.name}' row {row}: value missing", field=spec.name)
                if value is not None and not accepts(value):
                    raise InvalidInput(
                        f"field '{spec.name}' row {row}: expected {json_type} ({spec.type}), "
                        f"got {type(value).__name__} {value!r:.40}",
                        field=spec.name,
                    )

    def frame(self, columns: Columns, rows: int) -> pd.DataFrame:
        """One DataFrame with the signature's dtypes from validated columns (absent optional -> NaN/None)."""
        data = {}
        for spec in self.fields:
            values = columns.get(spec.name)
            dtype = _TYPES[spec.type][2]
            if values is None:
                data[spec.name] = (
                    np.full(rows, np.nan) if dtype in (np.float64, np.float32) else [None] * rows
                )
            else:
                data[spec.name] = np.asarray(values, dtype=dtype)
        return pd.DataFrame(data)


def frame_without_schema(columns: Columns) -> pd.DataFrame:
    """Models without a signature get what pandas infers, as ``mlflow models serve`` would do."""
    return pd.DataFrame(
        {name: [None if v is _MISSING else v for v in vals] for name, vals in columns.items()}
    )


def clean_json_value(value: Any) -> Any:
    """NaN/inf are not JSON; the scoring protocol answers them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
