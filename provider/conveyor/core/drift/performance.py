"""Performance decay on labelled feedback (concept drift): realised metrics vs thresholds and vs reference.

Covariate drift tests say the inputs moved; only labels say whether the model got worse. Metrics
come from ``conveyor.core.scoring`` under the version's contract, so the monitor and the model
gate measure the same thing the same way, for any task; each metric is judged in its own
direction (AUC falls, RMSE rises).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from conveyor.core.contract import METRICS, ModelContract
from conveyor.core.drift.interface import DriftInputError, plain_json
from conveyor.core.scoring import UnscorableModelError, checked_outputs, score_outputs

LABEL = "label"  # the inference log's feedback column, whatever the model's own label is called


@dataclass
class PerformanceResult:
    """``degraded`` is the decision; ``reasons`` says which metric broke which rule, in words."""

    degraded: bool
    metrics: dict[str, float | None]
    reference: dict[str, float | None]
    thresholds: dict[str, float]
    tolerance: float
    n_labelled: int
    positive_rate: float | None  # binary models only: the share of positive labels
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return plain_json(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerformanceResult:
        return cls(**data)


def monitored_metrics(contract: ModelContract, metrics: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """``metrics`` checked against the contract's task; by default the metrics its gate judges."""
    chosen = tuple(metrics) if metrics else tuple(r.metric for r in contract.gate)
    known = METRICS[contract.task]
    misfit = [m for m in chosen if m not in known]
    if misfit:
        raise ValueError(
            f"{contract.name} is a {contract.task} model: its metrics are {', '.join(known)}, not "
            f"{', '.join(misfit)}"
        )
    return chosen


def default_thresholds(contract: ModelContract, metrics: tuple[str, ...]) -> dict[str, float]:
    """The gate's absolute thresholds: the bar a version passed to be promoted is the bar it must
    keep in production."""
    return {r.metric: r.threshold for r in contract.gate if r.threshold is not None and r.metric in metrics}


def _labelled(frame: pd.DataFrame, contract: ModelContract, min_labelled: int) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise DriftInputError("no labelled predictions in the window: performance cannot be measured")
    needed = [LABEL, *contract.outputs.required]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DriftInputError(
            f"labelled window is missing column(s) {missing}; it has {sorted(frame.columns)}"
        )
    usable = frame.dropna(subset=needed)
    if contract.task == "binary_classification":
        labels = set(pd.unique(usable[LABEL]))
        if not labels <= {0, 1}:
            raise DriftInputError(f"labels must be 0/1, found {sorted(labels - {0, 1})[:5]}")
    elif contract.task == "multiclass_classification":
        unknown = sorted(set(usable[LABEL].astype(str)) - set(contract.classes))
        if unknown:
            raise DriftInputError(f"labels {unknown[:5]} are not among the classes {list(contract.classes)}")
    if len(usable) < min_labelled:
        raise DriftInputError(
            f"only {len(usable)} labelled predictions in the window, fewer than min_labelled={min_labelled}"
        )
    return usable


def _scores(contract: ModelContract, frame: pd.DataFrame) -> dict[str, float]:
    try:
        outputs = checked_outputs(contract, frame[contract.outputs.required], len(frame))
    except UnscorableModelError as exc:
        raise DriftInputError(f"the logged predictions break the contract: {exc}") from None
    return score_outputs(contract, frame[LABEL], outputs)


def check_performance(
    labelled: pd.DataFrame,
    contract: ModelContract,
    *,
    reference: dict[str, float] | None = None,
    thresholds: dict[str, float] | None = None,
    tolerance: float = 0.05,
    metrics: tuple[str, ...] | None = None,
    min_labelled: int = 200,
) -> PerformanceResult:
    """Degraded when a metric is worse than its threshold (a floor when higher is better, a
    ceiling otherwise), or worse than the training reference by more than ``tolerance``.

    ``metrics`` default to the contract's gate metrics and ``thresholds`` to its gate thresholds.
    A metric that cannot be computed on the window (one class only) is reported as ``None`` and
    never counts as degradation: a quiet hour with no delays is not concept drift.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    metrics = monitored_metrics(contract, metrics)
    thresholds = default_thresholds(contract, metrics) if thresholds is None else dict(thresholds)
    unknown = sorted(set(thresholds) - set(metrics))
    if unknown:
        raise ValueError(f"thresholds name metric(s) {unknown} that are not measured ({list(metrics)})")
    ref = {m: (reference or {}).get(m) for m in metrics}
    if not thresholds and all(value is None for value in ref.values()):
        # Nothing to compare with would always read as "no decay": a silent wrong answer.
        raise DriftInputError(
            f"nothing to judge {list(metrics)} against: the model version's training run has no "
            "reference metrics and no thresholds are set"
        )
    usable = _labelled(labelled, contract, min_labelled)
    scores = _scores(contract, usable)
    measured = {m: (None if math.isnan(scores[m]) else scores[m]) for m in metrics}
    direction = METRICS[contract.task]
    reasons = []
    for name in metrics:
        value = measured[name]
        if value is None:
            continue
        better = direction[name]
        bound = thresholds.get(name)
        if bound is not None and (value < bound if better else value > bound):
            side = "below the floor" if better else "above the ceiling"
            reasons.append(f"{name}={value:.4f} is {side} {bound:.4f}")
        base = ref[name]
        worse_by = None if base is None else (base - value if better else value - base)
        if worse_by is not None and worse_by > tolerance:
            side = "below" if better else "above"
            reasons.append(
                f"{name}={value:.4f} is {worse_by:.4f} {side} the reference {base:.4f} (> {tolerance})"
            )
    binary = contract.task == "binary_classification"
    return PerformanceResult(
        degraded=bool(reasons),
        metrics=measured,
        reference=ref,
        thresholds=thresholds,
        tolerance=tolerance,
        n_labelled=len(usable),
        positive_rate=float(usable[LABEL].mean()) if binary else None,
        reasons=reasons,
    )


def performance_over_time(
    labelled: pd.DataFrame,
    contract: ModelContract,
    freq: str = "1D",
    time_column: str = "ts",
    metrics: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """One row per period: the metrics and the number of labelled rows (for the over-time plot)."""
    metrics = monitored_metrics(contract, metrics)
    usable = labelled.dropna(subset=[LABEL, *contract.outputs.required])
    rows = []
    for period, part in usable.groupby(pd.Grouper(key=time_column, freq=freq)):
        if part.empty:
            continue
        scores = _scores(contract, part)
        rows.append({"period": period, "n": len(part), **{m: scores[m] for m in metrics}})
    return pd.DataFrame(rows, columns=["period", "n", *metrics])
