"""The model gate: a candidate against the champion on one held-out evaluation set.

MLflow 3 removed ``baseline_model``/``validation_thresholds`` from ``evaluate()``, and its
``MetricThreshold`` can only demand an improvement (``min_absolute_change`` must be > 0). A gate
that lets a retrained model through when it is "no worse than the champion within 0.005 AUC"
(non-inferiority) cannot be expressed there, so Conveyor owns the gate: both models are scored on
the *same* rows, every metric gets an absolute threshold and/or a tolerance against the champion,
and the decision (every number, threshold and delta) is written to MLflow where promotion reads it.
"""

from __future__ import annotations

import json
import math
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from conveyor.core.contract import METRICS, ContractError, ModelContract, version_contract
from conveyor.core.scoring import UnscorableModelError, checked_outputs, score_outputs
from conveyor.core.tracking import EVAL_SET_ARTIFACT

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

GateStatus = Literal["passed", "rejected", "forced"]
NoChampionPolicy = Literal["absolute_only", "reject"]

DECISION_ARTIFACT = "gate/gate_decision.json"
STATUS_TAG = "conveyor.gate.status"
REASON_TAG = "conveyor.gate.reason"
GATE_ID_TAG = "conveyor.gate.id"
BASELINE_TAG = "conveyor.gate.baseline_version"
# What the contract's ``gate.report`` names, as each version's run has it: "name=value (champion v)".
REPORT_TAG = "conveyor.gate.report"
# The reason of a rejected candidate that could not be scored starts with this.
UNSCORABLE = "candidate cannot be scored"

# Direction of every metric some task's scoring computes (a name means the same in every task).
HIGHER_IS_BETTER: dict[str, bool] = {m: up for task in METRICS.values() for m, up in task.items()}

# Float rounding must not turn "exactly at the tolerance" into a rejection (0.8 - 0.005 != 0.795).
_EPS = 1e-12


class GateError(ValueError):
    """The gate was asked something it cannot answer (bad rule, missing eval set, empty reason).

    Raised, never recorded: the fault is in the request or the surroundings, not in the candidate,
    so the task fails (and may be retried) and the candidate keeps no verdict it did not earn.
    """


@dataclass(frozen=True)
class MetricRule:
    """What one metric must satisfy.

    ``threshold`` is absolute and follows the direction: a floor when higher is better, a ceiling
    when lower is better. ``tolerance`` is the non-inferiority margin against the champion: the
    candidate may be at most this much worse (0 means "at least as good").
    """

    metric: str
    threshold: float | None = None
    tolerance: float | None = None
    higher_is_better: bool | None = None

    def __post_init__(self) -> None:
        if self.higher_is_better is None:
            if self.metric not in HIGHER_IS_BETTER:
                raise GateError(
                    f"metric {self.metric!r} has no known direction; set higher_is_better "
                    f"(known: {', '.join(sorted(HIGHER_IS_BETTER))})"
                )
            object.__setattr__(self, "higher_is_better", HIGHER_IS_BETTER[self.metric])
        if self.threshold is None and self.tolerance is None:
            raise GateError(f"rule for {self.metric!r} sets neither threshold nor tolerance")
        if self.tolerance is not None and (math.isnan(self.tolerance) or self.tolerance < 0):
            raise GateError(f"tolerance for {self.metric!r} must be >= 0, got {self.tolerance}")
        if self.threshold is not None and math.isnan(self.threshold):
            raise GateError(f"threshold for {self.metric!r} is NaN")


def rules_from_contract(contract: ModelContract) -> list[MetricRule]:
    """The rules ``conveyor.yml`` declares under ``gate.metrics``."""
    return [MetricRule(r.metric, r.threshold, r.tolerance, r.higher_is_better) for r in contract.gate]


def rules_from_mapping(spec: dict[str, dict[str, Any]]) -> list[MetricRule]:
    """Rules from the JSON-friendly form DAGs and params use.

    ``{"roc_auc": {"threshold": 0.6, "tolerance": 0.005}, "log_loss": {"tolerance": 0.01}}``
    """
    if not spec:
        raise GateError("the gate needs at least one metric rule")
    allowed = {"threshold", "tolerance", "higher_is_better"}
    rules = []
    for metric, body in spec.items():
        unknown = set(body) - allowed
        if unknown:
            raise GateError(
                f"rule for {metric!r} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        rules.append(MetricRule(metric=metric, **body))
    return rules


@dataclass
class MetricCheck:
    """One metric's verdict with the numbers behind it (``None`` where a check did not apply)."""

    metric: str
    higher_is_better: bool
    candidate: float | None
    baseline: float | None
    delta: float | None
    threshold: float | None
    tolerance: float | None
    threshold_ok: bool | None
    non_inferior_ok: bool | None
    passed: bool
    note: str = ""


@dataclass
class Reported:
    """A run param or metric named by the contract's ``gate.report``, as the candidate's and the
    champion's training runs recorded it (``None``: that run has no such param or metric)."""

    name: str
    candidate: str | None
    baseline: str | None

    def describe(self) -> str:
        champion = "" if self.baseline is None else f" (champion {self.baseline})"
        return f"{self.name}={self.candidate if self.candidate is not None else '-'}{champion}"


@dataclass
class GateDecision:
    """The gate's answer, complete enough to audit later without re-running anything."""

    model_name: str
    candidate_version: str | None
    candidate_run_id: str | None
    baseline_version: str | None
    status: GateStatus
    reason: str
    checks: list[MetricCheck]
    no_champion_policy: NoChampionPolicy
    eval_rows: int | None = None
    eval_source: str | None = None
    forced_by: str | None = None
    report: list[Reported] = field(default_factory=list)
    gate_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    decided_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def allows_promotion(self) -> bool:
        return self.status in ("passed", "forced")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        # NaN is not JSON; a missing number is written as null and explained in ``note``.
        return json.dumps(_nan_to_none(self.to_dict()), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateDecision:
        checks = [MetricCheck(**c) for c in data["checks"]]
        report = [Reported(**r) for r in data.get("report", [])]  # absent in decisions before it
        return cls(**{**data, "checks": checks, "report": report})

    def render_table(self) -> str:
        """A fixed-width table for task logs: one row per metric, then the verdict and why."""
        head = ("metric", "dir", "candidate", "champion", "delta", "threshold", "tolerance", "result")
        rows = [head]
        for c in self.checks:
            arrow = "↑" if c.higher_is_better else "↓"
            bound = (
                "" if c.threshold is None else ((">= " if c.higher_is_better else "<= ") + _fmt(c.threshold))
            )
            rows.append(
                (
                    c.metric,
                    arrow,
                    _fmt(c.candidate),
                    _fmt(c.baseline),
                    _fmt(c.delta, signed=True),
                    bound,
                    "" if c.tolerance is None else _fmt(c.tolerance),
                    ("PASS" if c.passed else "FAIL") + (f" ({c.note})" if c.note else ""),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        champion = f"v{self.baseline_version}" if self.baseline_version else "none"
        title = (
            f"Model gate {self.model_name} v{self.candidate_version} vs champion {champion}"
            f" on {self.eval_rows if self.eval_rows is not None else '?'} rows"
        )
        shown = [f"   reported: {r.describe()}" for r in self.report]
        # the verdict last, where a reader of the task log looks for it
        return "\n".join([title, *lines, *shown, f"=> {self.status.upper()}: {self.reason}"])


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def _usable(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _check(
    rule: MetricRule, candidate: float | None, baseline: float | None, has_champion: bool
) -> MetricCheck:
    better = bool(rule.higher_is_better)
    notes: list[str] = []
    threshold_ok = non_inferior_ok = None
    delta = candidate - baseline if _usable(candidate) and _usable(baseline) else None
    if not _usable(candidate):
        notes.append("candidate metric missing" if candidate is None else "candidate metric is NaN")
    else:
        if rule.threshold is not None:
            threshold_ok = (
                candidate >= rule.threshold - _EPS if better else candidate <= rule.threshold + _EPS
            )
            if not threshold_ok:
                notes.append("below threshold" if better else "above threshold")
        if rule.tolerance is not None and has_champion:
            if delta is None:
                notes.append("champion metric missing" if baseline is None else "champion metric is NaN")
            else:
                worse_by = -delta if better else delta
                non_inferior_ok = worse_by <= rule.tolerance + _EPS
                if not non_inferior_ok:
                    notes.append(f"worse than champion by {worse_by:.4f} > {rule.tolerance}")
        elif rule.tolerance is not None:
            notes.append("no champion: tolerance not assessed")
    passed = _usable(candidate) and threshold_ok is not False and non_inferior_ok is not False
    if passed and rule.tolerance is not None and has_champion and non_inferior_ok is None:
        passed = False  # a tolerance that could not be checked is not a pass
    return MetricCheck(
        metric=rule.metric,
        higher_is_better=better,
        candidate=candidate,
        baseline=baseline,
        delta=delta,
        threshold=rule.threshold,
        tolerance=rule.tolerance,
        threshold_ok=threshold_ok,
        non_inferior_ok=non_inferior_ok,
        passed=bool(passed),
        note=" and ".join(notes),
    )


def _check_request(rules: list[MetricRule], no_champion: str, force_reason: str | None) -> None:
    if no_champion not in ("absolute_only", "reject"):
        raise GateError(f"no_champion must be 'absolute_only' or 'reject', got {no_champion!r}")
    if not rules:
        raise GateError("the gate needs at least one metric rule")
    if force_reason is not None and not force_reason.strip():
        raise GateError("a forced pass needs a non-empty reason")


def decide(
    rules: list[MetricRule],
    candidate_metrics: dict[str, float],
    baseline_metrics: dict[str, float] | None,
    *,
    model_name: str,
    candidate_version: str | None = None,
    candidate_run_id: str | None = None,
    baseline_version: str | None = None,
    no_champion: NoChampionPolicy = "absolute_only",
    force_reason: str | None = None,
    forced_by: str | None = None,
    eval_rows: int | None = None,
    eval_source: str | None = None,
    report: list[Reported] | None = None,
) -> GateDecision:
    """Apply the rules to metrics already computed; pure, so every edge case is unit-testable.

    ``baseline_metrics=None`` means there is no champion yet: with ``no_champion="absolute_only"``
    only thresholds are checked (and the decision says so), with ``"reject"`` the gate refuses.
    A forced pass needs a non-empty reason; it keeps every failed check visible next to the reason.
    """
    _check_request(rules, no_champion, force_reason)
    has_champion = baseline_metrics is not None
    base = baseline_metrics or {}
    checks = [_check(r, candidate_metrics.get(r.metric), base.get(r.metric), has_champion) for r in rules]
    failed = [c for c in checks if not c.passed]
    if not has_champion and no_champion == "reject":
        status: GateStatus = "rejected"
        reason = "no champion to compare with and no_champion='reject'"
    elif failed:
        status = "rejected"
        reason = "; ".join(f"{c.metric}: {c.note}" for c in failed)
    else:
        status = "passed"
        reason = "all metrics within thresholds" + (
            " and non-inferior to the champion"
            if has_champion
            else " (no champion yet: absolute thresholds only)"
        )
    if force_reason is not None:
        verdict = f"gate verdict was {status}: {reason}"
        reason = f"forced by {forced_by or 'unknown'}: {force_reason.strip()} ({verdict})"
        status = "forced"
    return GateDecision(
        model_name=model_name,
        candidate_version=candidate_version,
        candidate_run_id=candidate_run_id,
        baseline_version=baseline_version,
        status=status,
        reason=reason,
        checks=checks,
        no_champion_policy=no_champion,
        eval_rows=eval_rows,
        eval_source=eval_source,
        forced_by=forced_by if force_reason is not None else None,
        report=list(report or []),
    )


def unscorable(
    problem: str,
    rules: list[MetricRule],
    *,
    model_name: str,
    candidate_version: str | None = None,
    candidate_run_id: str | None = None,
    baseline_version: str | None = None,
    no_champion: NoChampionPolicy = "absolute_only",
    force_reason: str | None = None,
    forced_by: str | None = None,
    eval_rows: int | None = None,
    eval_source: str | None = None,
    report: list[Reported] | None = None,
) -> GateDecision:
    """The rejection of a candidate that could not be scored, with ``problem`` as the reason.

    A forced pass does not override it: forcing overrules the gate's judgement of the metrics,
    while a version that cannot load or answer has no metrics to judge and would break serving.
    The request (and who asked to force) is kept in the reason.
    """
    _check_request(rules, no_champion, force_reason)
    reason = f"{UNSCORABLE}: {problem}"
    if force_reason is not None:
        reason += f" (forced pass asked by {forced_by or 'unknown'} not applied: {force_reason.strip()})"
    return GateDecision(
        model_name=model_name,
        candidate_version=candidate_version,
        candidate_run_id=candidate_run_id,
        baseline_version=baseline_version,
        status="rejected",
        reason=reason,
        checks=[],
        no_champion_policy=no_champion,
        eval_rows=eval_rows,
        eval_source=eval_source,
        report=list(report or []),
    )


@contextmanager
def downloaded_version(client: MlflowClient, name: str, version: str) -> Iterator[str]:
    """A private local copy of one registered version's files, removed when the block ends.

    Private, so concurrent gates never read each other's half-downloaded files; removed, so a
    gate run does not leave a whole model behind in /tmp. Failures here are the server's or the
    store's (unreachable, refused), not the model's: a version whose files are missing downloads
    what is there and then fails to load.
    """
    import mlflow

    # The registry's download URI is the artifact location itself; a ``models:/`` source would be
    # resolved by MLflow against the *global* tracking URI instead of this client's server.
    location = client.get_model_version_download_uri(name, version)
    with tempfile.TemporaryDirectory(prefix="conveyor-gate-") as folder:
        yield mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=folder, tracking_uri=client.tracking_uri
        )


def load_version_model(client: MlflowClient, name: str, version: str) -> Any:
    """The pyfunc model of one registered version, fetched through ``client``'s tracking server.

    Python models read their artifacts in ``load_context``, so the loaded model outlives its files.
    """
    import mlflow

    with downloaded_version(client, name, version) as local:
        return mlflow.pyfunc.load_model(local)


def score_version(
    client: MlflowClient, name: str, version: str, frame: pd.DataFrame, contract: ModelContract
) -> dict[str, float]:
    """Score one registered version on ``frame`` (features + the contract's label) with the
    metrics of the contract's task, its outputs checked against the contract.

    ``UnscorableModelError`` when the version does not load, its ``predict`` raises or its output
    breaks the contract; download and server errors propagate as they are.
    """
    label = contract.label
    if label not in frame.columns:
        raise GateError(f"evaluation set has no label column {label!r} (columns: {list(frame.columns)})")
    import mlflow

    with downloaded_version(client, name, version) as local:
        try:
            model = mlflow.pyfunc.load_model(local)
        except Exception as exc:  # the model's own code, pickle, files or dependencies
            raise UnscorableModelError(f"{name} v{version} does not load: {_error(exc)}") from exc
        _check_inputs(model, frame, f"{name} v{version}")
        try:
            predictions = model.predict(frame.drop(columns=[label]))
        except Exception as exc:
            raise UnscorableModelError(f"{name} v{version} raised on predict: {_error(exc)}") from exc
    try:
        outputs = checked_outputs(contract, predictions, len(frame))
    except UnscorableModelError as exc:
        raise UnscorableModelError(f"{name} v{version}: {exc}") from None
    return score_outputs(contract, frame[label], outputs)


def _check_inputs(model: Any, frame: pd.DataFrame, which: str) -> None:
    """An eval set without the inputs a version declares is the eval set's fault, not the model's."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        return
    required = [i.name for i in schema.inputs if getattr(i, "required", True)]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise GateError(f"evaluation set lacks the inputs {missing} that {which} requires")


def _error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:500]}"


def load_eval_set(client: MlflowClient, run_id: str, artifact_path: str = EVAL_SET_ARTIFACT) -> pd.DataFrame:
    """The held-out rows the training run logged, so candidate and champion see the same data."""
    from mlflow.exceptions import MlflowException

    from conveyor.core.tracking import read_frame_artifact

    try:
        return read_frame_artifact(client, run_id, artifact_path)
    except (MlflowException, OSError) as exc:
        raise GateError(
            f"run {run_id} has no evaluation set at artifact {artifact_path!r}; "
            f"pass eval_set explicitly ({exc})"
        ) from exc


def resolve_version(client: MlflowClient, name: str, ref: str) -> str | None:
    """A version number for ``ref`` (a version like ``"7"`` or an alias like ``"champion"``).

    ``None`` when an alias is not set: "no champion yet" is a normal state, not an error.
    """
    from mlflow.exceptions import MlflowException

    if ref.isdigit():
        return client.get_model_version(name, ref).version
    try:
        return str(client.get_model_version_by_alias(name, ref).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _contract(client: MlflowClient, name: str, version: str) -> ModelContract:
    try:
        return version_contract(client, name, version)
    except ContractError as exc:
        raise GateError(str(exc)) from None


def _fits(rules: list[MetricRule], contract: ModelContract, version: str) -> None:
    computed = METRICS[contract.task]
    misfit = [r.metric for r in rules if r.metric not in computed]
    if misfit:
        raise GateError(
            f"{contract.name} v{version} is a {contract.task} model; the gate computes "
            f"{', '.join(computed)} for it, not {', '.join(misfit)}"
        )


def run_gate(
    client: MlflowClient,
    name: str,
    rules: list[MetricRule] | None = None,
    *,
    candidate: str = "challenger",
    baseline: str = "champion",
    eval_set: pd.DataFrame | None = None,
    no_champion: NoChampionPolicy = "absolute_only",
    force_reason: str | None = None,
    actor: str | None = None,
    log: Any = None,
) -> GateDecision:
    """Score candidate and champion on one eval set, decide, and record the decision in MLflow.

    ``candidate``/``baseline`` are versions or aliases. Each version is scored under its own
    contract (``conveyor.contract`` tag: outputs, task); ``rules`` default to the candidate's
    ``gate.metrics``, and candidate and champion must share a task and a label to be compared.
    The eval set defaults to the one the candidate's training run logged at
    ``evaluation/eval_set.parquet``.

    A candidate that cannot be scored (does not load, raises on predict, answers with missing
    columns, the wrong number of rows, NaN or values outside [0, 1]) is *rejected* and recorded
    like any other verdict. Everything else raises and records nothing: bad rules, a missing eval
    set or label, an unreachable MLflow, and a champion that cannot be scored
    (``GateError``) — rejecting a candidate for the champion's fault would be wrong, and passing
    it unchecked would skip non-inferiority; fix or roll back the champion, or name another
    ``baseline``.
    """
    candidate_version = resolve_version(client, name, candidate)
    if candidate_version is None:
        raise GateError(f"registered model {name!r} has no version for candidate {candidate!r}")
    contract = _contract(client, name, candidate_version)
    rules = rules_from_contract(contract) if rules is None else rules
    _check_request(rules, no_champion, force_reason)
    _fits(rules, contract, candidate_version)
    run_id = client.get_model_version(name, candidate_version).run_id
    baseline_version = resolve_version(client, name, baseline)
    baseline_contract = None
    if baseline_version is not None:
        baseline_contract = _contract(client, name, baseline_version)
        if (baseline_contract.task, baseline_contract.label) != (contract.task, contract.label):
            raise GateError(
                f"{name} v{candidate_version} ({contract.task}, label {contract.label!r}) cannot be "
                f"compared with the champion v{baseline_version} ({baseline_contract.task}, label "
                f"{baseline_contract.label!r}); pass another baseline"
            )
    if eval_set is None:
        if not run_id:
            raise GateError(f"{name} v{candidate_version} has no source run to take the eval set from")
        eval_set = load_eval_set(client, run_id)
        source = f"runs:/{run_id}/{EVAL_SET_ARTIFACT}"
    else:
        source = "passed in"
    about = {
        "model_name": name,
        "candidate_version": candidate_version,
        "candidate_run_id": run_id,
        "baseline_version": baseline_version,
        "no_champion": no_champion,
        "force_reason": force_reason,
        "forced_by": actor,
        "eval_rows": len(eval_set),
        "eval_source": source,
        "report": reported(client, name, contract.report, run_id, baseline_version),
    }
    _say(log, "scoring %s v%s on %d rows", name, candidate_version, len(eval_set))
    try:
        candidate_metrics = score_version(client, name, candidate_version, eval_set, contract)
    except UnscorableModelError as exc:
        decision = unscorable(str(exc), rules, **about)
        record_decision(client, decision)
        return decision
    baseline_metrics = None
    if baseline_version is not None and baseline_contract is not None:
        _say(log, "scoring champion %s v%s on the same rows", name, baseline_version)
        try:
            baseline_metrics = score_version(client, name, baseline_version, eval_set, baseline_contract)
        except UnscorableModelError as exc:
            raise GateError(
                f"the champion ({baseline!r}) cannot be scored, so {name} v{candidate_version} was not "
                f"judged: {exc}. Fix or roll back the champion, or pass another baseline."
            ) from exc
    decision = decide(rules, candidate_metrics, baseline_metrics, **about)
    record_decision(client, decision)
    return decision


def reported(
    client: MlflowClient,
    name: str,
    names: tuple[str, ...],
    candidate_run_id: str | None,
    baseline_version: str | None,
) -> list[Reported]:
    """The ``gate.report`` values of the candidate's run and the champion's (params, else metrics)."""
    if not names:
        return []
    baseline_run_id = client.get_model_version(name, baseline_version).run_id if baseline_version else None
    candidate, baseline = _run_values(client, candidate_run_id), _run_values(client, baseline_run_id)
    return [Reported(n, candidate.get(n), baseline.get(n)) for n in names]


def _run_values(client: MlflowClient, run_id: str | None) -> dict[str, str]:
    if not run_id:
        return {}
    data = client.get_run(run_id).data
    values = {k: _short(v) for k, v in data.metrics.items()}
    values.update({k: _short(v) for k, v in data.params.items()})  # a param wins over a metric
    return values


def _short(value: Any) -> str:
    """Numbers to 4 significant digits (a threshold logged as 0.18812346 reads 0.1881), text as is."""
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def _say(log: Any, msg: str, *args: Any) -> None:
    if log is not None:
        log.info(msg, *args)


def record_decision(client: MlflowClient, decision: GateDecision) -> None:
    """Tags + JSON artifact on the candidate's run, and the same status on its model version.

    The model-version tags are what ``registry.promote`` checks: one run may register several
    versions, and promotion is decided per version.
    """
    tags = {
        STATUS_TAG: decision.status,
        REASON_TAG: decision.reason[:5000],
        GATE_ID_TAG: decision.gate_id,
        BASELINE_TAG: decision.baseline_version or "",
    }
    if decision.report:
        tags[REPORT_TAG] = "; ".join(r.describe() for r in decision.report)[:5000]
    if decision.candidate_run_id:
        for key, value in tags.items():
            client.set_tag(decision.candidate_run_id, key, value)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(DECISION_ARTIFACT).name
            path.write_text(decision.to_json())
            client.log_artifact(decision.candidate_run_id, str(path), str(Path(DECISION_ARTIFACT).parent))
    if decision.candidate_version:
        for key, value in tags.items():
            client.set_model_version_tag(decision.model_name, decision.candidate_version, key, value)
