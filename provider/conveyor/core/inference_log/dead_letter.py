"""Dead-letter files: rows the log could not take, one JSON line each with the reason.

``<root>/dead_letter/<kind>/<batch>.jsonl``. Written and read here, so the format lives in one
place.
"""

from __future__ import annotations

import json
from typing import Any

import fsspec

from conveyor.core.inference_log.json_values import json_safe
from conveyor.core.inference_log.layout import PREDICTIONS, dead_letter_folder

DeadRow = tuple[dict[str, Any], str]  # the row as the writer saw it, why it could not be written


def dead_letter_bytes(kind: str, batch: str, rows: list[DeadRow]) -> bytes:
    lines = [
        json.dumps({"kind": kind, "batch": batch, "reason": reason, "row": json_safe(row)}, allow_nan=False)
        for row, reason in rows
    ]
    return ("\n".join(lines) + "\n").encode()


def read_dead_letter(url: str, kind: str = PREDICTIONS, storage_options: dict | None = None) -> list[dict]:
    """Every dead-letter entry of ``kind`` (``reason``, ``row``, ``batch``), oldest file first."""
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    folder = dead_letter_folder(root, kind)
    fs.invalidate_cache(folder)  # object stores: no listing cached from an earlier call
    if not fs.exists(folder):
        return []
    entries = []
    for path in sorted(fs.glob(f"{folder}/*.jsonl")):
        with fs.open(path, "rb") as handle:
            entries.extend(json.loads(line) for line in handle.read().splitlines() if line)
    return entries
