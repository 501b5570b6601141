"""The ``kedro:`` section of ``conveyor.yml``: which catalog entries the plugin records.

A project keeps its own nodes and datasets; the section only names them, so the same plugin
serves any pipeline. Parsing is strict (an unknown key or a malformed name is an error naming the
field) and happens when the Kedro context is created, before any node runs.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.core.contract import ContractError, ModelContract, section, string_field

SECTION = "kedro"
# A catalog dataset name as Kedro accepts it (namespaces use dots, factories may add dashes).
_DATASET = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
_CALLABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")

# Fields that each name one catalog dataset.
DATASET_FIELDS = (
    "model",
    "metrics",
    "eval_set",
    "reference_sample",
    "lineage",
    "history",
    "validation_report",
)
_REQUIRED = frozenset({"model", "log_model", "metrics", "eval_set", "reference_sample"})
FIELDS = (
    *DATASET_FIELDS,
    "log_model",
    "figures",
    "data_gate",
    "experiment",
    "alias",
    "tracking_uri",
    "artifact_location",
)


@dataclass(frozen=True)
class KedroSection:
    """Catalog names the plugin watches, and where it records them.

    ``model``, ``metrics``, ``eval_set`` and ``reference_sample`` are what a registrable run must
    produce; the rest are recorded when present. ``data_gate`` maps an input dataset to the
    dataset that holds its GX suite.
    """

    model: str
    log_model: str
    metrics: str
    eval_set: str
    reference_sample: str
    experiment: str
    lineage: str | None = None
    history: str | None = None
    figures: tuple[str, ...] = ()
    validation_report: str | None = None
    data_gate: tuple[tuple[str, str], ...] = ()
    alias: str = "challenger"
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlartifacts"

    def datasets(self) -> dict[str, str]:
        """Every catalog name the section mentions, by the field that names it."""
        names = {field: getattr(self, field) for field in DATASET_FIELDS if getattr(self, field)}
        names.update({f"figures[{i}]": name for i, name in enumerate(self.figures)})
        for dataset, suite in self.data_gate:
            names[f"data_gate.{dataset}"] = dataset
            names[f"data_gate.{dataset} (suite)"] = suite
        return names

    def store_uri(self, project_path: Path) -> str:
        """``tracking_uri`` with a relative sqlite path made the project's, not the caller's cwd."""
        uri = self.tracking_uri
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            return f"sqlite:///{(project_path / uri.removeprefix('sqlite:///')).resolve()}"
        return uri

    def model_logger(self) -> Callable[[Any, Any], Any]:
        """The project's ``log_model`` function, imported; a ``ContractError`` names what failed."""
        module_name, _, attribute = self.log_model.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ContractError(f"kedro.log_model: cannot import {module_name!r}: {exc}") from None
        function = getattr(module, attribute, None)
        if not callable(function):
            raise ContractError(f"kedro.log_model: {module_name} has no function {attribute!r}")
        return function


def _dataset(value: Any, path: str, source: str) -> str:
    name = string_field(value, path, source)
    if not _DATASET.match(name):
        raise ContractError(f"{source}: {path} {name[:40]!r} is not a catalog dataset name")
    return name


def _matching(value: Any, path: str, source: str, pattern: re.Pattern[str], what: str) -> str:
    text = string_field(value, path, source)
    if not pattern.match(text):
        raise ContractError(f"{source}: {path} {text[:60]!r} must be {what}")
    return text


def _alias(value: Any, source: str) -> str:
    alias = _matching(value, "kedro.alias", source, _ALIAS, "an MLflow alias name")
    if alias == "latest" or re.fullmatch(r"v\d+", alias):
        raise ContractError(f"{source}: kedro.alias {alias!r} is reserved by MLflow (latest, v<number>)")
    return alias


def kedro_section(contract: ModelContract, source: str) -> KedroSection | None:
    """The contract's ``kedro:`` section, validated; ``None`` when the file has none."""
    if SECTION not in contract.extra:
        return None
    raw = section(contract.extra[SECTION], SECTION, set(FIELDS), source, required=_REQUIRED)
    names = {key: _dataset(raw[key], f"kedro.{key}", source) for key in DATASET_FIELDS if key in raw}
    figures = raw.get("figures", [])
    if not isinstance(figures, list):
        raise ContractError(f"{source}: kedro.figures must be a list of catalog dataset names")
    gate = raw.get("data_gate", {})
    gate = section(gate, "kedro.data_gate", set(gate) if isinstance(gate, dict) else set(), source)
    pairs = tuple(
        (_dataset(k, "kedro.data_gate", source), _dataset(v, f"kedro.data_gate.{k}", source))
        for k, v in gate.items()
    )
    duplicated = sorted({n for n in names.values() if list(names.values()).count(n) > 1})
    if duplicated:
        raise ContractError(f"{source}: kedro: {duplicated[0]!r} is named for two different outputs")
    return KedroSection(
        **names,
        log_model=_matching(
            raw["log_model"], "kedro.log_model", source, _CALLABLE, '"package.module:function"'
        ),
        figures=tuple(_dataset(f, f"kedro.figures[{i}]", source) for i, f in enumerate(figures)),
        data_gate=pairs,
        experiment=string_field(raw.get("experiment", contract.name), "kedro.experiment", source),
        alias=_alias(raw.get("alias", "challenger"), source),
        tracking_uri=string_field(
            raw.get("tracking_uri", "sqlite:///mlflow.db"), "kedro.tracking_uri", source
        ),
        artifact_location=string_field(
            raw.get("artifact_location", "mlartifacts"), "kedro.artifact_location", source
        ),
    )
