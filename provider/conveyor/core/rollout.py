"""The rollout state machine: how a new model version moves into production, step by step.

It holds no model and opens no socket: the gateway's controller feeds it events (loaded, load
failed, an analysis verdict, a person's resume/abort/promote, time passing) and applies the
traffic it asks for (``canary_weight``, ``shadow_fraction``, ``switched``). Keeping the rules here
makes every path testable in microseconds and leaves one record of what happened and why: each
transition is stored with its time and reason, which is the audit trail users ask for.

Strategies:
- ``blue_green``: the new version is loaded and warmed beside stable, traffic switches at once,
  the old version stays loaded for ``keep_previous_s`` so a rollback is a pointer swap.
- ``canary``: weights follow ``steps`` (e.g. 10 -> 50 -> 100); every step below 100 is followed
  by an analysis run. Failed -> automatic rollback, Inconclusive -> pause for a person,
  Successful -> next step; reaching 100 promotes the canary to stable.
- ``shadow``: the new version receives a copy of ``shadow_fraction`` of requests and never
  answers; after ``count`` analysis intervals the comparison is complete and the shadow ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from conveyor.core.analysis import AnalysisConfig, AnalysisRun, Measurement, Verdict


class Strategy(StrEnum):
    BLUE_GREEN = "blue_green"
    CANARY = "canary"
    SHADOW = "shadow"


class State(StrEnum):
    PENDING = "pending"
    LOADING = "loading"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    SWITCHED = "switched"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


TERMINAL = frozenset({State.SUCCEEDED, State.ROLLED_BACK, State.FAILED})
# Where a person's "rollback" may still restore the previous version instantly.
ROLLBACKABLE = frozenset({State.PROGRESSING, State.PAUSED, State.SWITCHED, State.SUCCEEDED})

_ALLOWED: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.LOADING}),
    State.LOADING: frozenset({State.PROGRESSING, State.SWITCHED, State.SUCCEEDED, State.FAILED}),
    State.PROGRESSING: frozenset({State.PROGRESSING, State.PAUSED, State.SUCCEEDED, State.ROLLED_BACK}),
    State.PAUSED: frozenset({State.PROGRESSING, State.SUCCEEDED, State.ROLLED_BACK}),
    State.SWITCHED: frozenset({State.SUCCEEDED, State.ROLLED_BACK}),
    State.SUCCEEDED: frozenset({State.ROLLED_BACK}),
    State.ROLLED_BACK: frozenset(),
    State.FAILED: frozenset(),
}


class RolloutError(RuntimeError):
    """An event that the rollout's current state does not allow (e.g. resume a finished rollout)."""


class InvalidSetting(ValueError):
    """A rollout or analysis setting given wrong; ``field`` names it, e.g. ``analysis.interval_s``."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


MAX_URI_LENGTH = 1024  # a model URI longer than this is a mistake or an attack, never a model


def _shown(value: Any) -> str:
    """The offending value in a message, cut short: settings come from users and from the network."""
    text = repr(value) if isinstance(value, str | int | float | bool | None) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any, name: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise InvalidSetting(f"{name} must be a finite number, got {_shown(value)}", field=name)
    return value


def _optional_number(value: Any, name: str) -> float | None:
    return None if value is None else _number(value, name)


def _integer(value: Any, name: str) -> int:
    if type(value) is not int:
        raise InvalidSetting(f"{name} must be an integer, got {_shown(value)}", field=name)
    return value


# Field annotations (strings under ``from __future__ import annotations``) -> the check of a value.
_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "float": _number,
    "float | None": _optional_number,
    "int": _integer,
}


def _check_types(cls: type, values: Mapping[str, Any], prefix: str = "") -> None:
    """Each value of a known field has the JSON type its annotation promises (bools are not numbers)."""
    for key, value in values.items():
        check = _CHECKS.get(str(cls.__dataclass_fields__[key].type))
        if check is not None:
            check(value, prefix + key)


def _steps(value: Any) -> tuple[int, ...]:
    """``"10,50,100"`` (CLI, Airflow params) or a list of integers; 10.5 is refused, never truncated."""
    if isinstance(value, str):
        try:
            return tuple(int(s) for s in value.split(",") if s.strip())
        except ValueError:
            raise InvalidSetting("canary steps must be integers, e.g. 10,50,100", field="steps") from None
    if not isinstance(value, list | tuple) or any(type(s) is not int for s in value):
        raise InvalidSetting(
            f"canary steps must be integers, e.g. [10, 50, 100], got {_shown(value)}", field="steps"
        )
    return tuple(value)


@dataclass(frozen=True)
class RolloutSpec:
    model_uri: str
    strategy: Strategy = Strategy.CANARY
    steps: tuple[int, ...] = (10, 50, 100)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    keep_previous_s: float = 300.0
    shadow_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not self.model_uri:
            raise InvalidSetting("a rollout needs a model_uri", field="model_uri")
        if self.strategy is Strategy.CANARY:
            if not self.steps or any(not 0 < s <= 100 for s in self.steps):
                raise InvalidSetting(
                    f"canary steps must be percentages in (0, 100], got {_shown(list(self.steps))}",
                    field="steps",
                )
            if list(self.steps) != sorted(set(self.steps)):
                raise InvalidSetting(
                    f"canary steps must strictly increase, got {list(self.steps)}", field="steps"
                )
        if not 0 < self.shadow_fraction <= 1:
            raise InvalidSetting(
                f"shadow_fraction must be in (0, 1], got {self.shadow_fraction}", field="shadow_fraction"
            )
        if self.keep_previous_s < 0:
            raise InvalidSetting("keep_previous_s must be >= 0", field="keep_previous_s")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RolloutSpec:
        """Build from user input (admin API, CLI, DAG params): every wrong key, type or value is an
        ``InvalidSetting`` naming the field, so the admin API answers 422 and never 500."""
        if not isinstance(values, Mapping):
            raise InvalidSetting(f"a rollout spec must be an object, got {type(values).__name__}")
        values = dict(values)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidSetting(
                f"unknown rollout setting(s) {[str(k)[:40] for k in unknown[:10]]}; known: {sorted(known)}",
                field=str(unknown[0])[:64],
            )
        uri = values.pop("model_uri", "")
        if not isinstance(uri, str) or len(uri) > MAX_URI_LENGTH:
            raise InvalidSetting(
                f"model_uri must be a string of at most {MAX_URI_LENGTH} characters, got {_shown(uri)}",
                field="model_uri",
            )
        strategy = values.pop("strategy", Strategy.CANARY)
        if strategy not in [s.value for s in Strategy]:
            raise InvalidSetting(
                f"unknown strategy {_shown(strategy)}; expected one of {[s.value for s in Strategy]}",
                field="strategy",
            )
        steps = _steps(values.pop("steps", (10, 50, 100)))
        _check_types(cls, values)
        return cls(
            model_uri=uri,
            strategy=Strategy(strategy),
            steps=steps,
            analysis=_analysis(values.pop("analysis", None)),
            **values,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_uri": self.model_uri,
            "strategy": self.strategy.value,
            "steps": list(self.steps),
            "analysis": self.analysis.to_dict(),
            "keep_previous_s": self.keep_previous_s,
            "shadow_fraction": self.shadow_fraction,
        }


@dataclass(frozen=True)
class Transition:
    at: datetime
    source: State
    target: State
    reason: str
    canary_weight: int

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Transition:
        return cls(
            datetime.fromisoformat(values["at"]),
            State(values["from"]),
            State(values["to"]),
            values["reason"],
            values["canary_weight"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "from": self.source.value,
            "to": self.target.value,
            "reason": self.reason,
            "canary_weight": self.canary_weight,
        }


@dataclass
class Rollout:
    """One rollout of one version into one deployment; see the module docstring for the rules."""

    deployment: str
    spec: RolloutSpec
    state: State = State.PENDING
    step_index: int = 0
    model_version: str | None = None
    transitions: list[Transition] = field(default_factory=list)
    analysis: AnalysisRun | None = None
    clock: Any = field(default=lambda: datetime.now(UTC), repr=False)

    # ---- what the gateway should apply -------------------------------------------------------
    @property
    def canary_weight(self) -> int:
        """Percent of live traffic the canary slot answers right now."""
        if self.spec.strategy is not Strategy.CANARY or self.state not in (State.PROGRESSING, State.PAUSED):
            return 0
        return self.spec.steps[self.step_index]

    @property
    def shadow_fraction(self) -> float:
        active = self.spec.strategy is Strategy.SHADOW and self.state is State.PROGRESSING
        return self.spec.shadow_fraction if active else 0.0

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    # ---- events ------------------------------------------------------------------------------
    def start(self) -> None:
        self._go(State.LOADING, f"loading {self.spec.model_uri}")

    def loaded(self, model_version: str) -> None:
        self.model_version = str(model_version)
        if self.spec.strategy is Strategy.BLUE_GREEN:
            self._go(
                State.SWITCHED,
                f"version {model_version} loaded and warm; traffic switched, previous kept warm "
                f"for {self.spec.keep_previous_s:.0f}s",
            )
        elif self.spec.strategy is Strategy.SHADOW:
            self._begin_analysis()
            self._go(
                State.PROGRESSING,
                f"version {model_version} loaded; mirroring {self.spec.shadow_fraction:.0%}",
            )
        else:
            self._enter_step(0, f"version {model_version} loaded")

    def load_failed(self, error: str) -> None:
        self._go(State.FAILED, f"load failed, current version keeps serving: {error}")

    def measured(self, measurement: Measurement) -> None:
        """Feed one analysis measurement; moves on when the step's analysis run has a verdict."""
        if self.state is not State.PROGRESSING or self.analysis is None:
            raise RolloutError(f"rollout is {self.state.value}: no analysis is running")
        verdict = self.analysis.add(measurement)
        if verdict is None:
            return
        reason = f"analysis {verdict.value}: {self.analysis.reason}"
        if verdict is Verdict.FAILED:
            self._go(State.ROLLED_BACK, f"automatic rollback, {reason}")
        elif verdict is Verdict.INCONCLUSIVE:
            self._go(State.PAUSED, f"paused for a decision, {reason}")
        elif self.spec.strategy is Strategy.SHADOW:
            self._go(State.SUCCEEDED, f"shadow comparison complete, {reason}")
        else:
            self._next_step(reason)

    def resume(self, reason: str = "resumed by a person") -> None:
        """After a pause: run the current step's analysis again."""
        if self.state is not State.PAUSED:
            raise RolloutError(f"only a paused rollout can resume; this one is {self.state.value}")
        self._begin_analysis()
        self._go(State.PROGRESSING, reason)

    def promote(self, reason: str = "promoted by a person") -> None:
        """Skip the remaining steps (canary, paused or progressing) and make the new version stable."""
        if self.spec.strategy is Strategy.SHADOW:
            raise RolloutError("a shadow rollout never takes traffic; start a canary or blue-green rollout")
        if self.state not in (State.PROGRESSING, State.PAUSED, State.SWITCHED):
            raise RolloutError(f"cannot promote a rollout that is {self.state.value}")
        self._go(State.SUCCEEDED, reason)

    def rollback(self, reason: str = "rolled back by a person") -> None:
        if self.state not in ROLLBACKABLE:
            raise RolloutError(f"cannot roll back a rollout that is {self.state.value}")
        self._go(State.ROLLED_BACK, reason)

    def previous_released(self) -> None:
        """Blue-green: the keep-warm time is over, the old version is unloaded."""
        if self.state is State.SWITCHED:
            self._go(
                State.SUCCEEDED,
                f"kept previous version warm for {self.spec.keep_previous_s:.0f}s; released it",
            )

    # ---- internals ---------------------------------------------------------------------------
    def _begin_analysis(self) -> None:
        self.analysis = AnalysisRun(self.spec.analysis)

    def _enter_step(self, index: int, reason: str) -> None:
        self.step_index = index
        weight = self.spec.steps[index]
        if weight >= 100:
            self._go(State.SUCCEEDED, f"{reason}; canary at 100%, promoted to stable")
            return
        self._begin_analysis()
        self._go(State.PROGRESSING, f"{reason}; canary weight {weight}%, analysing")

    def _next_step(self, reason: str) -> None:
        if self.step_index + 1 < len(self.spec.steps):
            self._enter_step(self.step_index + 1, reason)
        else:
            self._go(State.SUCCEEDED, f"{reason}; last step passed, promoted to stable")

    def _go(self, target: State, reason: str) -> None:
        if target not in _ALLOWED[self.state]:
            raise RolloutError(f"rollout cannot go from {self.state.value} to {target.value}")
        source, self.state = self.state, target
        self.transitions.append(Transition(self.clock(), source, target, reason, self.canary_weight))

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "spec": self.spec.to_dict(),
            "state": self.state.value,
            "step_index": self.step_index,
            "canary_weight": self.canary_weight,
            "model_version": self.model_version,
            "analysis": [m.to_dict() for m in self.analysis.measurements] if self.analysis else [],
            "transitions": [t.to_dict() for t in self.transitions],
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Rollout:
        """The rollout ``to_dict`` wrote, so a restarted controller resumes where the last one was.

        The analysis of the current step comes back with its measurements: a resumed step needs
        only the measurements it still lacks.
        """
        spec = RolloutSpec.from_dict(values["spec"])
        state = State(values["state"])
        rollout = cls(
            values["deployment"],
            spec,
            state=state,
            step_index=values["step_index"],
            model_version=values["model_version"],
            transitions=[Transition.from_dict(t) for t in values["transitions"]],
        )
        if state in (State.PROGRESSING, State.PAUSED) or values["analysis"]:
            rollout.analysis = AnalysisRun(
                spec.analysis, [Measurement.from_dict(m) for m in values["analysis"]]
            )
        return rollout


def _analysis(values: Any) -> AnalysisConfig:
    """Analysis settings with their types checked here, since ``AnalysisConfig`` only checks ranges."""
    if values is None:
        return AnalysisConfig()
    if not isinstance(values, Mapping):
        raise InvalidSetting(
            f"analysis must be an object of settings, got {type(values).__name__}", field="analysis"
        )
    known = {k: v for k, v in values.items() if k in AnalysisConfig.__dataclass_fields__}
    _check_types(AnalysisConfig, known, prefix="analysis.")
    try:
        return AnalysisConfig.from_dict(dict(values))
    except ValueError as exc:
        unknown = sorted(str(k)[:64] for k in set(values) - set(known))
        raise InvalidSetting(str(exc), field=f"analysis.{unknown[0]}" if unknown else "analysis") from None
