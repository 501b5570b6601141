"""JSON for the spool and the dead-letter files: any value a client sent, as valid, bounded JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

MAX_REPR_CHARS = 2000  # a dead-letter line shows the offending value, not megabytes of it


def short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a hostile object's __repr__ must not take the writer down
        text = f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= MAX_REPR_CHARS else text[:MAX_REPR_CHARS] + "...(truncated)"


def jsonable(value: Any) -> Any:
    """``json.dumps``'s fallback: numpy and time values as themselves, anything else as its repr."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    return short_repr(value)


def json_safe(value: Any, depth: int = 0) -> Any:
    """Strict JSON (no NaN tokens, bounded size) for a dead-letter row: whatever the row held."""
    if isinstance(value, np.generic | np.ndarray):
        value = jsonable(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_REPR_CHARS else value[:MAX_REPR_CHARS] + "...(truncated)"
    if depth < 8 and isinstance(value, Mapping):
        return {
            short_repr(k) if not isinstance(k, str) else k: json_safe(v, depth + 1) for k, v in value.items()
        }
    if depth < 8 and isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in value[:1000]]
    return jsonable(value) if isinstance(value, datetime) else short_repr(value)
