"""The model contract: what a project's model is, declared once in ``conf/base/conveyor.yml``.

Every generic part of Conveyor (the gate, infra validation, the gateway, canary analysis, the
inference log, drift and performance monitoring, the notebook views) needs the same few facts
about a model: its task, where the truth is, which output columns it returns and which one is
the number to watch, how the gate judges it and what the canary compares online. Declaring them
once and storing them with every registered version means each part reads the facts of the
version it handles, so two models, or two versions of one model, never get each other's rules.

Loading is strict: an unknown key, a wrong type or a metric that does not fit the task is an
error naming the field, before anything trains.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

TaskType = Literal["binary_classification", "multiclass_classification", "regression"]
TASKS: tuple[str, ...] = get_args(TaskType)

CONTRACT_TAG = "conveyor.contract"
CONTRACT_FILE = "conveyor.yml"
# Top-level sections of conveyor.yml that describe the project rather than the model: the Kedro
# plugin reads ``kedro``, the DAG factory ``airflow``. Kept as they are in ``extra``, validated by
# their owners, and never stored with a version.
PROJECT_SECTIONS: tuple[str, ...] = ("kedro", "airflow")
# MLflow keeps at most 5000 characters in a model version tag's value.
MAX_TAG_CHARS = 5000

# Offline metrics each task's scoring computes, with their direction (True: higher is better).
METRICS: dict[str, dict[str, bool]] = {
    "binary_classification": {
        "roc_auc": True,
        "average_precision": True,
        "accuracy": True,
        "f1": True,
        "log_loss": False,
        "brier": False,
    },
    "multiclass_classification": {"accuracy": True, "macro_f1": True, "log_loss": False},
    "regression": {"rmse": False, "mae": False, "r2": True},
}
# Online metrics the canary can compute from labelled feedback, with their direction.
ONLINE_METRICS: dict[str, dict[str, bool]] = {
    "binary_classification": {"accuracy": True, "balanced_accuracy": True, "f1": True},
    "multiclass_classification": {"accuracy": True},
    "regression": {"mae": False},
}
DEFAULT_ONLINE = {
    "binary_classification": "accuracy",
    "multiclass_classification": "accuracy",
    "regression": "mae",
}

# A registered model name Conveyor can put in asset URIs, DAG ids and deployment names.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
_COLUMN_MAX = 200


class ContractError(ValueError):
    """The contract is malformed; the message names the field (``model.outputs.score``)."""


@dataclass(frozen=True)
class GateRule:
    """One metric the gate judges: an absolute ``threshold`` (a floor when higher is better, a
    ceiling otherwise) and/or a non-inferiority ``tolerance`` against the champion."""

    metric: str
    higher_is_better: bool
    threshold: float | None = None
    tolerance: float | None = None


@dataclass(frozen=True)
class Outputs:
    """The columns ``predict`` returns.

    ``score`` is the one number per row that metrics, analysis and drift watch: the probability
    of the positive class (binary), the predicted value (regression), or the top-class
    probability (multi-class). ``decision`` is the class the model decides on (binary and
    multi-class). ``probabilities`` are one column per class in ``classes`` order (multi-class).
    """

    score: str
    decision: str | None = None
    probabilities: tuple[str, ...] = ()

    @property
    def required(self) -> list[str]:
        """Every column a version must return, for infra validation and the staging smoke test."""
        names = [self.score, *([self.decision] if self.decision else []), *self.probabilities]
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Canary:
    """What canary analysis compares on labelled live traffic: ``online_metric`` of the canary may
    be at most ``max_degradation`` worse than stable's."""

    online_metric: str
    higher_is_better: bool
    max_degradation: float = 0.05


@dataclass(frozen=True)
class ModelContract:
    """A model's contract; ``from_mapping`` is the only way in, so every instance is valid."""

    name: str
    task: TaskType
    label: str
    outputs: Outputs
    gate: tuple[GateRule, ...]
    canary: Canary
    classes: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Run params or metrics of each version the gate shows beside its verdict (``gate.report``),
    # e.g. a classifier's chosen decision threshold: numbers no metric rule judges, but that
    # explain what the candidate ships.
    report: tuple[str, ...] = ()

    def to_dict(self, with_extra: bool = True) -> dict[str, Any]:
        """The form ``conveyor.yml`` has, so a stored contract reads like the file it came from."""
        model: dict[str, Any] = {"name": self.name, "task": self.task, "label": self.label}
        if self.classes:
            model["classes"] = list(self.classes)
        outputs: dict[str, Any] = {"score": self.outputs.score}
        if self.outputs.decision:
            outputs["decision"] = self.outputs.decision
        if self.outputs.probabilities:
            outputs["probabilities"] = list(self.outputs.probabilities)
        model["outputs"] = outputs
        rules = {}
        for rule in self.gate:
            body: dict[str, float] = {}
            if rule.threshold is not None:
                body["threshold"] = rule.threshold
            if rule.tolerance is not None:
                body["tolerance"] = rule.tolerance
            rules[rule.metric] = body
        gate: dict[str, Any] = {"metrics": rules}
        if self.report:
            gate["report"] = list(self.report)
        return {
            "model": model,
            "gate": gate,
            "canary": {
                "online_metric": self.canary.online_metric,
                "max_degradation": self.canary.max_degradation,
            },
            **(dict(self.extra) if with_extra else {}),
        }

    def to_tag(self) -> str:
        """The contract as a model version tag value (compact JSON); sections other parts own
        (the Kedro plugin's) describe the project, not the version, and stay out."""
        text = json.dumps(self.to_dict(with_extra=False), separators=(",", ":"))  # rule order kept
        if len(text) > MAX_TAG_CHARS:
            raise ContractError(
                f"the contract is {len(text)} characters as JSON; a model version tag holds {MAX_TAG_CHARS}"
            )
        return text

    @classmethod
    def from_tag(cls, text: str) -> ModelContract:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"tag {CONTRACT_TAG} is not JSON: {exc}") from None
        return cls.from_mapping(data, source=f"tag {CONTRACT_TAG}")

    @classmethod
    def from_mapping(
        cls, data: Any, source: str = CONTRACT_FILE, extra_sections: tuple[str, ...] = PROJECT_SECTIONS
    ) -> ModelContract:
        """Validate ``data`` (the parsed ``conveyor.yml``).

        ``extra_sections`` are top-level keys another part owns (``PROJECT_SECTIONS``): kept as
        they are in ``extra``, not validated here.
        """
        top = section(
            data, "", {"model", "gate", "canary", *extra_sections}, source, required={"model", "gate"}
        )
        model = section(
            top["model"],
            "model",
            {"name", "task", "label", "outputs", "classes"},
            source,
            required={"name", "task", "label", "outputs"},
        )
        name = string_field(model["name"], "model.name", source)
        if not _NAME.match(name):
            raise ContractError(
                f"{source}: model.name {name[:40]!r} must start with a letter and hold only letters, "
                "digits, '_' and '-' (at most 63): it becomes part of DAG ids, asset URIs and "
                "deployment names"
            )
        task = string_field(model["task"], "model.task", source)
        if task not in TASKS:
            raise ContractError(f"{source}: model.task {task[:40]!r} is not one of {', '.join(TASKS)}")
        label = _column(model["label"], "model.label", source)
        classes = tuple(_string_list(model.get("classes", []), "model.classes", source))
        outputs = _outputs(model["outputs"], task, classes, source)
        if label in outputs.required and label != outputs.decision:
            raise ContractError(
                f"{source}: model.label {label!r} is also an output column other than the decision; "
                "the truth and the prediction would be confused"
            )
        gate_section = section(top["gate"], "gate", {"metrics", "report"}, source, required={"metrics"})
        rules = _gate_rules(gate_section["metrics"], task, source)
        report = tuple(_string_list(gate_section.get("report", []), "gate.report", source))
        canary = _canary(top.get("canary", {}), task, source)
        extra = {k: top[k] for k in extra_sections if k in top}
        return cls(name, task, label, outputs, rules, canary, classes, extra, report)  # type: ignore[arg-type]

    @classmethod
    def from_file(cls, path: str | Path, extra_sections: tuple[str, ...] = PROJECT_SECTIONS) -> ModelContract:
        import yaml

        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ContractError(f"{path}: no such file; `conveyor init` writes one") from None
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
            # PyYAML's own constructors fail with plain errors on some scalars it accepts as
            # tokens (timestamps with second-resolution offsets): still a file that does not load.
            raise ContractError(f"{path}: not valid YAML: {type(exc).__name__}: {exc}") from None
        return cls.from_mapping(data, source=str(path), extra_sections=extra_sections)


class MissingContractError(ContractError):
    """A registered version carries no contract, so no generic part can tell how to read it."""


def version_contract(client: Any, name: str, version: str | int) -> ModelContract:
    """The contract stored with ``name`` v``version`` (its ``conveyor.contract`` tag).

    There is deliberately no fallback: guessing columns for a version registered without a
    contract would score, serve or monitor it under some other model's rules.
    """
    tags = client.get_model_version(name, str(version)).tags
    text = tags.get(CONTRACT_TAG)
    if not text:
        raise MissingContractError(
            f"{name} v{version} has no {CONTRACT_TAG} tag: it was registered without a model contract. "
            "Register it through the Conveyor Kedro plugin (it reads conf/base/conveyor.yml) or pass "
            "contract= to conveyor.core.tracking.register_version"
        )
    try:
        return ModelContract.from_tag(text)
    except ContractError as exc:
        raise ContractError(f"{name} v{version}: {exc}") from None


def _where(path: str, source: str) -> str:
    return f"{source}: {path}" if path else source


def section(
    value: Any, path: str, allowed: set[str], source: str, required: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    """``value`` as a mapping of ``allowed`` keys holding every ``required`` one. Public so every
    owner of a conveyor.yml section (the DAG factory, the Kedro plugin) refuses with one voice."""
    if not isinstance(value, Mapping):
        raise ContractError(f"{_where(path, source)} must be a mapping, got {type(value).__name__}")
    keys = {k for k in value if not isinstance(k, str)}
    if keys:
        raise ContractError(f"{_where(path, source)} has non-text keys {sorted(map(repr, keys))[:5]}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        names = ", ".join(f"{path}.{k}" if path else k for k in unknown)
        raise ContractError(f"{source}: unknown key {names[:200]} (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(value))
    if missing:
        names = ", ".join(f"{path}.{k}" if path else k for k in missing)
        raise ContractError(f"{source}: {names} is required")
    return dict(value)


def string_field(value: Any, path: str, source: str) -> str:
    """A non-empty string at ``path``, or a ``ContractError`` naming it."""
    if not isinstance(value, str) or not value.strip():
        raise ContractError(f"{source}: {path} must be a non-empty string, got {_show(value)}")
    return value


def _column(value: Any, path: str, source: str) -> str:
    name = string_field(value, path, source)
    if len(name) > _COLUMN_MAX or name != name.strip():
        raise ContractError(
            f"{source}: {path} {name[:40]!r} is not a column name "
            f"(no surrounding spaces, at most {_COLUMN_MAX} characters)"
        )
    return name


def _string_list(value: Any, path: str, source: str) -> list[str]:
    if not isinstance(value, list):
        raise ContractError(f"{source}: {path} must be a list, got {_show(value)}")
    items = [_column(v, f"{path}[{i}]", source) for i, v in enumerate(value)]
    if len(set(items)) != len(items):
        raise ContractError(f"{source}: {path} repeats a name")
    return items


def number_field(value: Any, path: str, source: str, minimum: float | None = None) -> float:
    """A finite number (not a bool) at ``path``, at least ``minimum``, or a ``ContractError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ContractError(f"{source}: {path} must be a finite number, got {_show(value)}")
    if minimum is not None and value < minimum:
        raise ContractError(f"{source}: {path} must be >= {minimum}, got {value}")
    return float(value)


def _show(value: Any) -> str:
    return f"{type(value).__name__} {str(value)[:40]!r}"


def _outputs(value: Any, task: str, classes: tuple[str, ...], source: str) -> Outputs:
    body = section(value, "model.outputs", {"score", "decision", "probabilities"}, source, required={"score"})
    score = _column(body["score"], "model.outputs.score", source)
    decision = _column(body["decision"], "model.outputs.decision", source) if "decision" in body else None
    probabilities = tuple(_string_list(body.get("probabilities", []), "model.outputs.probabilities", source))
    if task == "regression":
        if decision is not None or probabilities or classes:
            raise ContractError(
                f"{source}: a regression model has no classes: drop model.outputs.decision, "
                "model.outputs.probabilities and model.classes"
            )
    elif task == "binary_classification":
        if probabilities or classes:
            raise ContractError(
                f"{source}: a binary classifier's score is the positive class's probability: drop "
                "model.outputs.probabilities and model.classes"
            )
    else:
        if len(classes) < 3:
            raise ContractError(
                f"{source}: model.classes must list the 3 or more classes of a multi-class model"
            )
        if len(probabilities) != len(classes):
            raise ContractError(
                f"{source}: model.outputs.probabilities must name one column per class in model.classes "
                f"({len(classes)}), got {len(probabilities)}"
            )
        if decision is None:
            raise ContractError(
                f"{source}: model.outputs.decision (the predicted class) is required for multi-class"
            )
    if decision is not None and decision == score:
        raise ContractError(f"{source}: model.outputs.decision and model.outputs.score are the same column")
    return Outputs(score, decision, probabilities)


def _gate_rules(value: Any, task: str, source: str) -> tuple[GateRule, ...]:
    known = METRICS[task]
    if isinstance(value, Mapping):
        misfit = sorted(str(k) for k in value if k not in known)
        if misfit:
            raise ContractError(
                f"{source}: gate.metrics.{misfit[0][:40]} does not fit {task} "
                f"(its metrics: {', '.join(known)})"
            )
    body = section(value, "gate.metrics", set(known), source)
    if not body:
        raise ContractError(
            f"{source}: gate.metrics needs at least one metric (for {task}: {', '.join(known)})"
        )
    rules = []
    for metric, spec in body.items():
        path = f"gate.metrics.{metric}"
        rule = section(spec if spec is not None else {}, path, {"threshold", "tolerance"}, source)
        if not rule:
            raise ContractError(f"{source}: {path} sets neither threshold nor tolerance")
        threshold = (
            number_field(rule["threshold"], f"{path}.threshold", source) if "threshold" in rule else None
        )
        tolerance = (
            number_field(rule["tolerance"], f"{path}.tolerance", source, 0) if "tolerance" in rule else None
        )
        rules.append(GateRule(metric, known[metric], threshold, tolerance))
    return tuple(rules)


def _canary(value: Any, task: str, source: str) -> Canary:
    body = section(value, "canary", {"online_metric", "max_degradation"}, source)
    online = ONLINE_METRICS[task]
    metric = string_field(body.get("online_metric", DEFAULT_ONLINE[task]), "canary.online_metric", source)
    if metric not in online:
        raise ContractError(
            f"{source}: canary.online_metric {metric[:40]!r} does not fit {task} (use {', '.join(online)})"
        )
    degradation = number_field(body.get("max_degradation", 0.05), "canary.max_degradation", source, 0)
    return Canary(metric, online[metric], degradation)
