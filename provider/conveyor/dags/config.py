"""The ``airflow:`` section of ``conveyor.yml``: what the DAG factory needs beyond the model contract.

The contract says what the model is; this section says how its loop runs: when ``ml_ci`` trains
and on which partitions, which catalog datasets the data gate checks with which suite, which Kedro
parameters the trigger form exposes, where ``ml_cd`` deploys and how, and what ``ml_monitor``
watches. Everything a DAG file used to hard-code for the demo lives here, so another team's model
gets its three DAGs from its own file and nothing of the demo.

Loading is as strict as the contract's: an unknown key, a wrong type, a cron expression Airflow
would refuse or a name two DAGs would share is a ``ContractError`` naming the field
(``airflow.ci.schedule``), raised while the dag-processor parses the file, so it shows as that
file's import error instead of a DAG that fails later. Nothing heavier than ``croniter`` and
``pendulum`` (both loaded by Airflow anyway) is imported: this runs at every parse.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from conveyor.core.contract import METRICS, ContractError, ModelContract, number_field, section, string_field
from conveyor.dags import metrics

SECTION = "airflow"
KINDS: tuple[str, ...] = ("ml_ci", "ml_cd", "ml_monitor")
STRATEGIES: tuple[str, ...] = ("canary", "blue_green", "shadow")
DRIFT_BACKENDS: tuple[str, ...] = ("alibi", "scipy")
# The settings ``conveyor.core.analysis.AnalysisConfig`` takes (a test keeps the two in step; the
# class itself imports numpy, too heavy for a DAG parse).
ANALYSIS_SETTINGS: tuple[str, ...] = (
    "interval_s",
    "count",
    "failure_limit",
    "inconclusive_limit",
    "min_requests",
    "max_error_rate",
    "max_p95_latency_ratio",
    "latency_slack_s",
    "max_p95_latency_s",
    "max_score_shift",
    "max_online_degradation",
    "min_labelled",
)
# Settings of ``conveyor.core.drift.DriftConfig`` that ``monitor.drift`` may set, with their ranges
# (low, high, whole number); the backend is ``monitor.drift_backend`` (a form field), and the
# methods depend on it, so they stay the detector's defaults. A test keeps these in step with the
# class, which imports numpy, too heavy for a DAG parse.
DRIFT_SETTINGS: dict[str, tuple[float | None, float | None, bool]] = {
    "p_val": (0.0, 1.0, False),
    "psi_threshold": (0.0, None, False),
    "min_window_rows": (2, None, True),
    "max_nan_share": (0.0, 0.999, False),
    "max_unseen_share": (0.0, 1.0, False),
    "max_reference_rows": (1, None, True),
}
# The gateway's rule for deployment names (``conveyor.serving.deployment.NAME_PATTERN``, which a
# test compares with this one): a DNS-1123 label.
DEPLOYMENT_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
# Params the factory itself puts on the ml_ci form; a Kedro param may not take these names.
CI_PARAMS: tuple[str, ...] = ("partitions", "force_reason")

# strftime directives a partition name may use, with the text each one produces.
_DIRECTIVES = {
    "Y": r"\d{4}",
    "G": r"\d{4}",
    "m": r"(0[1-9]|1[0-2])",
    "d": r"(0[1-9]|[12]\d|3[01])",
    "H": r"([01]\d|2[0-3])",
    "V": r"(0[1-9]|[1-4]\d|5[0-3])",
    "j": r"(00[1-9]|0[1-9]\d|[12]\d\d|3[0-5]\d|36[0-6])",
}
_FORMAT_LITERAL = re.compile(r"[A-Za-z0-9_.-]")
_CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
_PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_DATASET = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_TIMEZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+/-]{0,63}")


@dataclass(frozen=True)
class Connections:
    """Airflow connection ids the tasks use; a second model on another Kedro project names its own."""

    mlflow: str = "mlflow_default"
    kedro: str = "kedro_default"
    gateway: str = "conveyor_gateway_default"


@dataclass(frozen=True)
class Partition:
    """How a data interval names its partition (``format``, strftime of the interval's start) and
    what manual runs train on (``default``); ``runtime_param`` is the Kedro parameter that gets it."""

    format: str
    default: tuple[str, ...]
    runtime_param: str = "partition"

    @property
    def pattern(self) -> str:
        """A regular expression for one partition name, for the trigger form's validation."""
        return _format_pattern(self.format)


@dataclass(frozen=True)
class KedroParam:
    """A Kedro parameter on the ml_ci trigger form; empty leaves the project's own value."""

    name: str
    runtime_param: str
    type: Literal["integer", "number"]
    description: str
    minimum: float | None = None
    maximum: float | None = None
    default: float | None = None


@dataclass(frozen=True)
class Ci:
    schedule: str
    start_date: datetime
    partition: Partition
    end_date: datetime | None = None
    max_active_runs: int = 1
    data_gate: tuple[tuple[str, str], ...] = ()
    params: tuple[KedroParam, ...] = ()


@dataclass(frozen=True)
class Cd:
    deployment: str
    strategy: str = "canary"
    canary_steps: tuple[int, ...] = (10, 50, 100)
    analysis: Mapping[str, float | None] | None = None
    approval_timeout: timedelta = timedelta(hours=24)
    infra_sample_rows: int = 50


@dataclass(frozen=True)
class Monitor:
    schedule: str
    start_date: datetime
    thresholds: Mapping[str, float]
    window_hours: float = 24.0
    drift_backend: str = "alibi"
    drift_min_rows: int = 500
    performance_min_rows: int = 200
    timeout: timedelta = timedelta(minutes=50)
    tolerance: float = 0.05
    drift: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AirflowConfig:
    """The validated ``airflow:`` section; ``from_contract`` is the only way in."""

    prefix: bool
    timezone: str
    connections: Connections
    ci: Ci
    cd: Cd
    monitor: Monitor

    @classmethod
    def from_contract(cls, contract: ModelContract, source: str) -> AirflowConfig:
        top = section(
            contract.extra.get(SECTION, {}),
            SECTION,
            {"prefix", "timezone", "connections", "ci", "cd", "monitor"},
            source,
            required={"ci"},
        )
        timezone = _timezone(top.get("timezone", "UTC"), f"{SECTION}.timezone", source)
        ci = _ci(top["ci"], contract, timezone, source)
        return cls(
            prefix=_bool(top.get("prefix", False), f"{SECTION}.prefix", source),
            timezone=timezone,
            connections=_connections(top.get("connections", {}), source),
            ci=ci,
            cd=_cd(top.get("cd", {}), contract, source),
            monitor=_monitor(top.get("monitor", {}), contract, timezone, ci.start_date, source),
        )


@dataclass(frozen=True)
class DagSpec:
    """One model's contract and Airflow settings, and every name its three DAGs derive from them.

    All names come from the model name, so two models in one Airflow never share a DAG id, an
    asset, a deployment, a retraining target or the Variable that overrides retraining partitions.
    """

    contract: ModelContract
    config: AirflowConfig
    prefix: bool
    source: str

    @property
    def name(self) -> str:
        return self.contract.name

    def dag_id(self, kind: str) -> str:
        """``ml_ci``, or ``<model>__ml_ci`` when prefixed."""
        if kind not in KINDS:
            raise ValueError(f"no DAG {kind!r}; the factory builds {', '.join(KINDS)}")
        return f"{self.name}__{kind}" if self.prefix else kind

    @property
    def asset_uri(self) -> str:
        return f"model://{self.name}/challenger"

    @property
    def asset_name(self) -> str:
        return f"{self.name}_challenger"

    @property
    def retrain_partitions_variable(self) -> str:
        """The Airflow Variable that overrides the partitions ml_monitor asks ml_ci to retrain on."""
        return f"{self.name}__conveyor_retrain_partitions" if self.prefix else "conveyor_retrain_partitions"

    @property
    def connection_args(self) -> dict[str, str]:
        """Connection ids as ``default_args``: Airflow hands each operator the ones it takes."""
        conns = self.config.connections
        return {
            "mlflow_conn_id": conns.mlflow,
            "kedro_conn_id": conns.kedro,
            "gateway_conn_id": conns.gateway,
        }

    def tags(self, role: str) -> list[str]:
        return ["conveyor", role, self.name]

    def doc_md(self, text: str) -> str:
        """The DAG's description in the UI: which model it serves, then what it does."""
        return (
            f"**Model `{self.name}`** ({self.contract.task}), built by `conveyor.dags` from "
            f"`{self.source}`: asset `{self.asset_uri}`, deployment `{self.config.cd.deployment}`, "
            f"DAGs `{'`, `'.join(self.dag_id(k) for k in KINDS)}`.\n\n{text}"
        )


def load(conveyor_yml: str | Path, prefix: bool | None = None) -> DagSpec:
    """Read and validate ``conveyor.yml``; ``prefix`` (when not None) overrides ``airflow.prefix``."""
    source = str(conveyor_yml)
    contract = ModelContract.from_file(conveyor_yml)
    config = AirflowConfig.from_contract(contract, source)
    return DagSpec(contract, config, config.prefix if prefix is None else bool(prefix), source)


# ---- sections ---------------------------------------------------------------------------------


def _connections(value: Any, source: str) -> Connections:
    path = f"{SECTION}.connections"
    body = section(value, path, {"mlflow", "kedro", "gateway"}, source)
    ids = {key: _matching(v, f"{path}.{key}", source, _CONN_ID, "a connection id") for key, v in body.items()}
    return Connections(**ids)


def _ci(value: Any, contract: ModelContract, timezone: str, source: str) -> Ci:
    path = f"{SECTION}.ci"
    body = section(
        value,
        path,
        {"schedule", "start_date", "end_date", "max_active_runs", "partition", "data_gate", "params"},
        source,
        required={"schedule", "start_date", "partition"},
    )
    start = _date(body["start_date"], f"{path}.start_date", timezone, source)
    end = None
    if body.get("end_date") is not None:
        end = _date(body["end_date"], f"{path}.end_date", timezone, source)
        if end <= start:
            raise ContractError(f"{source}: {path}.end_date must be after {path}.start_date")
    partition = _partition(body["partition"], source)
    params = _kedro_params(body.get("params", {}), contract, partition, source)
    return Ci(
        schedule=_cron(body["schedule"], f"{path}.schedule", source),
        start_date=start,
        end_date=end,
        max_active_runs=_int(body.get("max_active_runs", 1), f"{path}.max_active_runs", source, 1, 64),
        partition=partition,
        data_gate=_data_gate(body.get("data_gate", {}), source),
        params=params,
    )


def _partition(value: Any, source: str) -> Partition:
    path = f"{SECTION}.ci.partition"
    body = section(
        value, path, {"format", "default", "runtime_param"}, source, required={"format", "default"}
    )
    fmt = string_field(body["format"], f"{path}.format", source)
    one = _format_pattern(fmt, f"{path}.format", source)
    default = body["default"]
    if not isinstance(default, list) or not default:
        raise ContractError(f"{source}: {path}.default must be a non-empty list of partition names")
    names = []
    for i, item in enumerate(default):
        if not isinstance(item, str) or not re.fullmatch(one, item):
            raise ContractError(
                f"{source}: {path}.default[{i}] {str(item)[:40]!r} is not a partition name of format "
                f"{fmt!r} (write it as a quoted string, e.g. {_sample(fmt)!r})"
            )
        names.append(item)
    runtime = _matching(
        body.get("runtime_param", "partition"), f"{path}.runtime_param", source, _DOTTED, "a parameter path"
    )
    return Partition(fmt, tuple(names), runtime)


def _format_pattern(fmt: str, path: str = "format", source: str = "") -> str:
    """The regular expression of the names ``fmt`` gives; refuses formats a form cannot check."""
    parts, i, directives = [], 0, 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%":
            code = fmt[i + 1 : i + 2]
            if code not in _DIRECTIVES:
                raise ContractError(
                    f"{source}: {path} {fmt[:40]!r}: %{code} is not one of "
                    f"{', '.join('%' + d for d in _DIRECTIVES)}"
                )
            parts.append(_DIRECTIVES[code])
            directives += 1
            i += 2
            continue
        if not _FORMAT_LITERAL.fullmatch(char):
            raise ContractError(
                f"{source}: {path} {fmt[:40]!r}: only letters, digits, '-', '_' and '.' may stand "
                "between the directives (',' separates partitions)"
            )
        parts.append(
            r"\." if char == "." else char
        )  # no other literal is special; JSON schema keeps it plain
        i += 1
    if not directives or len(fmt) > 40:
        raise ContractError(
            f"{source}: {path} {fmt[:40]!r} needs a strftime directive such as %Y (at most 40 characters)"
        )
    # The DAGs render templates as native objects: a name such as 201301 or 2013.01 would reach
    # Kedro and the data gate as a number.
    for moment in (datetime(2013, 1, 1), datetime(2013, 12, 28, 23)):
        sample = moment.strftime(fmt)
        try:
            ast.literal_eval(sample)
        except (ValueError, SyntaxError, MemoryError, TypeError):
            continue
        raise ContractError(
            f"{source}: {path} {fmt!r} gives partition names like {sample!r} that read as a number; "
            "separate the fields with '-' (e.g. '%Y-%m')"
        )
    return "".join(parts)


def _sample(fmt: str) -> str:
    return datetime(2013, 1, 1).strftime(fmt)


def _data_gate(value: Any, source: str) -> tuple[tuple[str, str], ...]:
    path = f"{SECTION}.ci.data_gate"
    if not isinstance(value, Mapping):
        raise ContractError(f"{source}: {path} must map catalog datasets to their suite datasets")
    pairs = []
    for dataset, suite in value.items():
        where = f"{path}.{str(dataset)[:40]}"
        _matching(dataset, where, source, _DATASET, "a catalog dataset name")
        pairs.append((dataset, _matching(suite, where, source, _DATASET, "a catalog dataset name")))
    return tuple(pairs)


def _kedro_params(
    value: Any, contract: ModelContract, partition: Partition, source: str
) -> tuple[KedroParam, ...]:
    path = f"{SECTION}.ci.params"
    if not isinstance(value, Mapping):
        raise ContractError(f"{source}: {path} must map form field names to Kedro parameters")
    taken = {*CI_PARAMS, *_gate_param_names(contract)}
    params: list[KedroParam] = []
    for name, spec in value.items():
        where = f"{path}.{str(name)[:40]}"
        _matching(name, where, source, _PARAM_NAME, "a lowercase identifier")
        if name in taken:
            raise ContractError(f"{source}: {where}: the form already has a field {name!r}")
        body = section(
            spec,
            where,
            {"runtime_param", "type", "description", "minimum", "maximum", "default"},
            source,
            required={"runtime_param", "type", "description"},
        )
        kind = _choice(body["type"], f"{where}.type", source, ("integer", "number"))
        low, high = (_bound(body.get(k), f"{where}.{k}", source) for k in ("minimum", "maximum"))
        if low is not None and high is not None and low > high:
            raise ContractError(f"{source}: {where}.minimum is above {where}.maximum")
        default = None
        if body.get("default") is not None:
            default = (
                _int(body["default"], f"{where}.default", source, low, high)
                if kind == "integer"
                else _bounded(body["default"], f"{where}.default", source, low, high)
            )
        params.append(
            KedroParam(
                name=name,
                runtime_param=_matching(
                    body["runtime_param"], f"{where}.runtime_param", source, _DOTTED, "a parameter path"
                ),
                type=kind,  # type: ignore[arg-type]
                description=string_field(body["description"], f"{where}.description", source),
                minimum=low,
                maximum=high,
                default=default,
            )
        )
    _disjoint_paths(
        [(partition.runtime_param, f"{SECTION}.ci.partition.runtime_param")]
        + [(p.runtime_param, f"{path}.{p.name}.runtime_param") for p in params],
        source,
    )
    return tuple(params)


def _bound(value: Any, path: str, source: str, minimum: float | None = None) -> float | None:
    """A number or null, kept whole when written whole (an integer field's bounds, a count)."""
    if value is None:
        return None
    number = number_field(value, path, source, minimum)
    return value if isinstance(value, int) else number


def _disjoint_paths(paths: list[tuple[str, str]], source: str) -> None:
    """Two overrides of one Kedro parameter (or of a parameter and its parent) would clobber each other."""
    for i, (one, one_field) in enumerate(paths):
        for other, other_field in paths[:i]:
            if one == other or one.startswith(other + ".") or other.startswith(one + "."):
                raise ContractError(f"{source}: {one_field} {one!r} overlaps {other_field} {other!r}")


def _gate_param_names(contract: ModelContract) -> set[str]:
    names = set()
    for rule in contract.gate:
        if rule.threshold is not None:
            names.add(metrics.threshold_param(contract.task, rule.metric))
        if rule.tolerance is not None:
            names.add(metrics.tolerance_param(rule.metric))
    return names


def _cd(value: Any, contract: ModelContract, source: str) -> Cd:
    path = f"{SECTION}.cd"
    body = section(
        value,
        path,
        {"deployment", "strategy", "canary_steps", "analysis", "approval_timeout_hours", "infra_sample_rows"},
        source,
    )
    if "deployment" in body:
        deployment = string_field(body["deployment"], f"{path}.deployment", source)
    else:
        deployment = contract.name.lower().replace("_", "-")
    if not DEPLOYMENT_NAME.fullmatch(deployment):
        raise ContractError(
            f"{source}: {path}.deployment {deployment[:40]!r} is not a DNS-1123 label (at most 63 "
            "lowercase letters, digits and '-', starting and ending with a letter or digit)"
            + ("" if "deployment" in body else "; the model name does not give one, so set it")
        )
    return Cd(
        deployment=deployment,
        strategy=_choice(body.get("strategy", "canary"), f"{path}.strategy", source, STRATEGIES),
        canary_steps=_steps(body.get("canary_steps", [10, 50, 100]), f"{path}.canary_steps", source),
        analysis=_analysis(body.get("analysis"), f"{path}.analysis", source),
        approval_timeout=timedelta(
            hours=_bounded(
                body.get("approval_timeout_hours", 24),
                f"{path}.approval_timeout_hours",
                source,
                0,
                8760,
                True,
            )
        ),
        infra_sample_rows=_int(
            body.get("infra_sample_rows", 50), f"{path}.infra_sample_rows", source, 1, 10_000
        ),
    )


def _steps(value: Any, path: str, source: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ContractError(f"{source}: {path} must be a non-empty list of traffic percentages")
    steps = tuple(_int(v, f"{path}[{i}]", source, 1, 100) for i, v in enumerate(value))
    if list(steps) != sorted(set(steps)) or steps[-1] != 100:
        raise ContractError(f"{source}: {path} must rise strictly and end at 100, got {list(steps)}")
    return steps


def _analysis(value: Any, path: str, source: str) -> Mapping[str, float | None] | None:
    if value is None:
        return None
    body = section(value, path, set(ANALYSIS_SETTINGS), source)
    # Whole numbers stay whole: ``count`` and the limits are counts.
    return {key: _bound(v, f"{path}.{key}", source, 0) for key, v in body.items()}


def _monitor(value: Any, contract: ModelContract, timezone: str, ci_start: datetime, source: str) -> Monitor:
    path = f"{SECTION}.monitor"
    body = section(
        value,
        path,
        {
            "schedule",
            "start_date",
            "window_hours",
            "drift_backend",
            "drift_min_rows",
            "performance_min_rows",
            "timeout_minutes",
            "thresholds",
            "tolerance",
            "drift",
        },
        source,
    )
    start = ci_start
    if body.get("start_date") is not None:
        start = _date(body["start_date"], f"{path}.start_date", timezone, source)
    return Monitor(
        schedule=_cron(body.get("schedule", "@hourly"), f"{path}.schedule", source),
        start_date=start,
        thresholds=_thresholds(body.get("thresholds"), contract, f"{path}.thresholds", source),
        window_hours=_bounded(body.get("window_hours", 24), f"{path}.window_hours", source, 0.01, 8760),
        drift_backend=_choice(
            body.get("drift_backend", "alibi"), f"{path}.drift_backend", source, DRIFT_BACKENDS
        ),
        drift_min_rows=_int(body.get("drift_min_rows", 500), f"{path}.drift_min_rows", source, 1, 10**9),
        performance_min_rows=_int(
            body.get("performance_min_rows", 200), f"{path}.performance_min_rows", source, 1, 10**9
        ),
        timeout=timedelta(
            minutes=_bounded(
                body.get("timeout_minutes", 50), f"{path}.timeout_minutes", source, 0, 10080, True
            )
        ),
        tolerance=_bounded(body.get("tolerance", 0.05), f"{path}.tolerance", source, 0, None),
        drift=_drift(body.get("drift", {}), f"{path}.drift", source),
    )


def _drift(value: Any, path: str, source: str) -> Mapping[str, float]:
    """Detector settings for this model's data-drift sensor (e.g. ``max_unseen_share: 1`` when a
    categorical input such as the month takes values the training months cannot have)."""
    body = section(value, path, set(DRIFT_SETTINGS), source)
    settings: dict[str, float] = {}
    for key, raw in body.items():
        low, high, whole = DRIFT_SETTINGS[key]
        where = f"{path}.{key}"
        if whole:
            settings[key] = _int(raw, where, source, low, high)
        else:
            settings[key] = _bounded(raw, where, source, low, high, exclusive_low=key == "p_val")
            if key == "p_val" and settings[key] >= 1:
                raise ContractError(f"{source}: {where} must be below 1, got {settings[key]}")
    return settings


def _thresholds(value: Any, contract: ModelContract, path: str, source: str) -> Mapping[str, float]:
    """The monitor's absolute bounds per metric; by default the gate's thresholds."""
    if value is None:
        return {r.metric: r.threshold for r in contract.gate if r.threshold is not None}
    known = METRICS[contract.task]
    if isinstance(value, Mapping):
        misfit = sorted(str(k) for k in value if k not in known)
        if misfit:
            raise ContractError(
                f"{source}: {path}.{misfit[0][:40]} does not fit {contract.task} "
                f"(its metrics: {', '.join(known)})"
            )
    body = section(value, path, set(known), source)
    return {metric: number_field(v, f"{path}.{metric}", source) for metric, v in body.items()}


# ---- values -----------------------------------------------------------------------------------


def _matching(value: Any, path: str, source: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ContractError(
            f"{source}: {path} must be {what}, got {type(value).__name__} {str(value)[:40]!r}"
        )
    return value


def _bool(value: Any, path: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise ContractError(
            f"{source}: {path} must be true or false, got {type(value).__name__} {str(value)[:40]!r}"
        )
    return value


def _choice(value: Any, path: str, source: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ContractError(f"{source}: {path} must be one of {', '.join(allowed)}, got {str(value)[:40]!r}")
    return value


def _int(value: Any, path: str, source: str, low: float | None, high: float | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(
            f"{source}: {path} must be a whole number, got {type(value).__name__} {str(value)[:40]!r}"
        )
    _check_range(value, path, source, low, high)
    return value


def _bounded(
    value: Any, path: str, source: str, low: float | None, high: float | None, exclusive_low: bool = False
) -> float:
    number = number_field(value, path, source)
    if exclusive_low and low is not None and number <= low:
        raise ContractError(f"{source}: {path} must be > {low}, got {number}")
    _check_range(number, path, source, low, high)
    return number


def _check_range(value: float, path: str, source: str, low: float | None, high: float | None) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ContractError(f"{source}: {path} must be in {span}, got {value}")


def _cron(value: Any, path: str, source: str) -> str:
    """A five-field cron expression or one of Airflow's presets, as its cron timetables take it."""
    from airflow.sdk import CronTriggerTimetable
    from croniter import croniter

    text = string_field(value, path, source)
    expression = CronTriggerTimetable(text, timezone="UTC").expression  # presets resolved
    try:
        valid = croniter.is_valid(expression) and len(croniter(expression).expanded) == 5
    except (ValueError, KeyError, TypeError):  # croniter's own errors are ValueErrors
        valid = False
    if not valid:
        raise ContractError(
            f"{source}: {path} {text[:40]!r} is not a five-field cron expression or preset "
            "(e.g. '0 0 1 * *', '@hourly')"
        )
    return text


def _timezone(value: Any, path: str, source: str) -> str:
    import pendulum

    name = _matching(value, path, source, _TIMEZONE, "an IANA time zone name such as UTC")
    try:
        pendulum.timezone(name)
    except (ValueError, OSError):  # unknown zone, or a name the zone database cannot look up
        raise ContractError(f"{source}: {path} {name!r} is not a known time zone") from None
    return name


def _date(value: Any, path: str, timezone: str, source: str) -> datetime:
    """A date (YAML ``2013-01-01``) or ISO date-time, as an aware datetime in ``timezone``."""
    import pendulum

    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ContractError(
                f"{source}: {path} {value[:40]!r} is not an ISO date such as 2013-01-01"
            ) from None
    if isinstance(value, datetime):
        moment = pendulum.instance(value, tz=timezone) if value.tzinfo is None else pendulum.instance(value)
    elif isinstance(value, date):
        moment = pendulum.datetime(value.year, value.month, value.day, tz=timezone)
    else:
        raise ContractError(f"{source}: {path} must be a date such as 2013-01-01, got {type(value).__name__}")
    if not 1970 <= moment.year <= 2200:
        raise ContractError(f"{source}: {path} {moment.date()} is outside 1970..2200")
    return moment
