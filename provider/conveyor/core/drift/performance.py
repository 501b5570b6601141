"""Performance decay on labelled feedback (concept drift): realised metrics vs floors and vs reference.

Covariate drift tests say the inputs moved; only labels say whether the model got worse. Metrics
come from ``conveyor.core.scoring`` so the monitor and the model gate measure the
same thing the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from conveyor.core.drift.interface import DriftInputError, plain_json
from conveyor.core.scoring import binary_metrics

LABEL = "label"
SCORE = "delay_probability"
DEFAULT_METRICS = ("roc_auc", "f1", "accuracy")


@dataclass
class PerformanceResult:
    """``degraded`` is the decision; ``reasons`` says which metric broke which rule, in words."""

    degraded: bool
    metrics: dict[str, float | None]
    reference: dict[str, float | None]
    min_metrics: dict[str, float]
    tolerance: float
    n_labelled: int
    positive_rate: float
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return plain_json(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerformanceResult:
        return cls(**data)


def _labelled(frame: pd.DataFrame, label: str, score: str, min_labelled: int) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise DriftInputError("no labelled predictions in the window: performance cannot be measured")
    missing = [c for c in (label, score) if c not in frame.columns]
    if missing:
        raise DriftInputError(
            f"labelled window is missing column(s) {missing}; it has {sorted(frame.columns)}"
        )
    usable = frame.dropna(subset=[label, score])
    labels = set(pd.unique(usable[label]))
    if not labels <= {0, 1}:
        raise DriftInputError(f"labels must be 0/1, found {sorted(labels - {0, 1})[:5]}")
    if len(usable) < min_labelled:
        raise DriftInputError(
            f"only {len(usable)} labelled predictions in the window, fewer than min_labelled={min_labelled}"
        )
    return usable


def check_performance(
    labelled: pd.DataFrame,
    *,
    reference: dict[str, float] | None = None,
    min_metrics: dict[str, float] | None = None,
    tolerance: float = 0.05,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    min_labelled: int = 200,
    label: str = LABEL,
    score: str = SCORE,
) -> PerformanceResult:
    """Degraded when a metric falls below its floor, or below ``reference - tolerance``.

    A metric that cannot be computed on the window (one class only) is reported as ``None`` and
    never counts as degradation: a quiet hour with no delays is not concept drift.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    min_metrics = dict(min_metrics or {})
    unknown = sorted(set(min_metrics) - set(metrics))
    if unknown:
        raise ValueError(f"min_metrics names metric(s) {unknown} that are not measured ({list(metrics)})")
    ref = {m: (reference or {}).get(m) for m in metrics}
    if not min_metrics and all(value is None for value in ref.values()):
        # Nothing to compare with would always read as "no decay": a silent wrong answer.
        raise DriftInputError(
            f"nothing to judge {list(metrics)} against: the model version's training run has no "
            "reference metrics and no min_metrics floors are set"
        )
    usable = _labelled(labelled, label, score, min_labelled)
    scores = binary_metrics(usable[label], usable[score])
    measured = {m: (None if math.isnan(scores[m]) else scores[m]) for m in metrics}
    reasons = []
    for name in metrics:
        value = measured[name]
        if value is None:
            continue
        floor = min_metrics.get(name)
        if floor is not None and value < floor:
            reasons.append(f"{name}={value:.4f} is below the floor {floor:.4f}")
        base = ref[name]
        if base is not None and value < base - tolerance:
            reasons.append(
                f"{name}={value:.4f} fell {base - value:.4f} below the reference {base:.4f} (> {tolerance})"
            )
    return PerformanceResult(
        degraded=bool(reasons),
        metrics=measured,
        reference=ref,
        min_metrics=min_metrics,
        tolerance=tolerance,
        n_labelled=len(usable),
        positive_rate=float(usable[label].mean()),
        reasons=reasons,
    )


def performance_over_time(
    labelled: pd.DataFrame,
    freq: str = "1D",
    time_column: str = "ts",
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    label: str = LABEL,
    score: str = SCORE,
) -> pd.DataFrame:
    """One row per period: the metrics and the number of labelled rows (for the over-time plot)."""
    usable = labelled.dropna(subset=[label, score])
    rows = []
    for period, part in usable.groupby(pd.Grouper(key=time_column, freq=freq)):
        if part.empty:
            continue
        scores = binary_metrics(part[label], part[score])
        rows.append({"period": period, "n": len(part), **{m: scores[m] for m in metrics}})
    return pd.DataFrame(rows, columns=["period", "n", *metrics])
