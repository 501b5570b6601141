"""Run configuration from a notebook: parsed from YAML/JSON and checked against the DAG's params.

Airflow accepts any conf and only fails a task later, minutes into the run. Checking here, before
anything is submitted, turns a typo into an error that names the field while the user is still
looking at the cell.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema
import yaml


class ConfError(ValueError):
    """The run conf cannot be submitted; the message names the offending field."""


def parse_conf(text: str | None) -> dict[str, Any]:
    """A conf mapping from JSON or YAML text (JSON is YAML, but its errors read better as JSON's)."""
    if text is None or not text.strip():
        return {}
    stripped = text.strip()
    try:
        value = json.loads(stripped) if stripped.startswith("{") else yaml.safe_load(stripped)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfError(f"conf is neither valid JSON nor YAML: {exc}") from None
    if not isinstance(value, dict):
        raise ConfError(f"conf must be a mapping of param names to values, got {type(value).__name__}")
    return value


def param_specs(params: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{name: {"default", "schema", "description"}}`` from the params of Airflow's DAG details."""
    specs: dict[str, dict[str, Any]] = {}
    for name, raw in (params or {}).items():
        if isinstance(raw, Mapping) and ("schema" in raw or "value" in raw or "__class" in raw):
            specs[name] = {
                "default": raw.get("value"),
                "schema": dict(raw.get("schema") or {}),
                "description": raw.get("description") or (raw.get("schema") or {}).get("description"),
            }
        else:  # a bare value: Airflow wraps it in a Param without a schema
            specs[name] = {"default": raw, "schema": {}, "description": None}
    return specs


def validate_conf(dag_id: str, conf: Mapping[str, Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``conf`` if every field is a known param of ``dag_id`` and satisfies its schema.

    Unknown fields are refused (Airflow would silently ignore a misspelt param and run with the
    default), and a param without a default must be given.
    """
    specs = param_specs(params)
    unknown = sorted(set(conf) - set(specs))
    if unknown:
        known = ", ".join(sorted(specs)) or "none"
        raise ConfError(f"unknown field {unknown[0]!r} for DAG {dag_id!r} (its params: {known})")
    for name, spec in specs.items():
        schema = spec["schema"]
        if name not in conf:
            if spec["default"] is None and schema and not _allows_null(schema):
                raise ConfError(f"field {name!r} is required by DAG {dag_id!r} and has no default")
            continue
        if not schema:
            continue
        try:
            jsonschema.validate(conf[name], schema)
        except jsonschema.ValidationError as exc:
            raise ConfError(f"field {name!r}: {exc.message}") from None
    return dict(conf)


def _allows_null(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind)
