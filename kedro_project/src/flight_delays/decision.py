"""How the served model turns a delay probability into the ``delayed`` decision.

Delays are 13-33% of a month's flights and the features separate them only moderately (ROC AUC
0.6-0.75), so a fixed 0.5 answers "on time" for nearly every flight: F1 0 while the ranking is
fine. The threshold is therefore chosen on the validation split, for the objective the project
declares (``training.threshold``), and a fixed ``training.decision_threshold`` overrides it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

Objective = Literal["f1", "balanced_accuracy", "precision", "recall"]
OBJECTIVES: tuple[str, ...] = ("f1", "balanced_accuracy", "precision", "recall")
MAXIMISED = ("f1", "balanced_accuracy")  # objectives with no target


class ThresholdConfigError(ValueError):
    """``training.threshold`` or ``training.decision_threshold`` is malformed; the message names it."""


@dataclass(frozen=True)
class ThresholdPolicy:
    """What the threshold is chosen for.

    ``f1``: the threshold with the highest F1. ``balanced_accuracy``: the one with the highest
    mean of the two classes' recalls (Youden's J); unlike F1 it does not depend on how common
    delays are, so a validation slice with many more delays than the traffic (a stormy week)
    does not pull the threshold down to "flag everything". ``precision`` with ``target``: the lowest threshold
    (so the most delays found) whose precision reaches the target. ``recall`` with ``target``:
    the highest threshold (so the fewest false alarms) whose recall reaches the target.
    ``fixed``: a forced threshold that skips the choice.
    """

    objective: Objective = "f1"
    target: float | None = None
    fixed: float | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ThresholdPolicy:
        """The policy of ``params:training``: its ``threshold`` mapping and ``decision_threshold``."""
        fixed = params.get("decision_threshold")
        if fixed is not None:
            fixed = _probability(fixed, "training.decision_threshold")
        spec = params.get("threshold")
        spec = {} if spec is None else spec
        if not isinstance(spec, Mapping):
            raise ThresholdConfigError(
                "training.threshold must be a mapping such as {objective: f1} or "
                f"{{objective: precision, target: 0.6}}, got {type(spec).__name__} {str(spec)[:40]!r}"
            )
        unknown = sorted(set(spec) - {"objective", "target"})
        if unknown:
            raise ThresholdConfigError(
                f"training.threshold has unknown key(s) {unknown}; allowed: objective, target"
            )
        objective = spec.get("objective", "f1")
        if objective not in OBJECTIVES:
            raise ThresholdConfigError(
                f"training.threshold.objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}"
            )
        target = spec.get("target")
        if objective in MAXIMISED:
            if target is not None:
                raise ThresholdConfigError(
                    f"training.threshold.target applies to objective precision or recall; {objective} "
                    "has no target (it is maximised): drop target or change the objective"
                )
        else:
            if target is None:
                raise ThresholdConfigError(
                    f"training.threshold.objective {objective} needs a target in (0, 1], "
                    f"e.g. {{objective: {objective}, target: 0.6}}"
                )
            target = _probability(target, "training.threshold.target")
            if target == 0:
                raise ThresholdConfigError(
                    f"training.threshold.target must be above 0 (every threshold reaches {objective} 0)"
                )
        return cls(objective, target, fixed)

    def describe(self) -> str:
        """The rule in words, as MLflow shows it next to the threshold."""
        if self.fixed is not None:
            return "fixed by training.decision_threshold"
        if self.objective == "f1":
            return "highest F1 on the validation split"
        if self.objective == "balanced_accuracy":
            return "highest balanced accuracy on the validation split"
        other = "recall" if self.objective == "precision" else "precision"
        return f"highest {other} with {self.objective} >= {self.target} on the validation split"


def _probability(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ThresholdConfigError(f"{path} must be a number in [0, 1], got {type(value).__name__} {value!r}")
    if not 0 <= value <= 1:
        raise ThresholdConfigError(f"{path} must be in [0, 1], got {value}")
    return float(value)


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold and what it gave on the validation rows it was chosen on."""

    threshold: float
    rule: str
    precision: float
    recall: float
    f1: float
    target_met: bool = True


def _at(labels: np.ndarray, proba: np.ndarray, threshold: float) -> tuple[float, float, float]:
    predicted = proba >= threshold
    tp = float(np.sum(predicted & (labels == 1)))
    flagged, positives = float(np.sum(predicted)), float(np.sum(labels == 1))
    precision = tp / flagged if flagged else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def choose_threshold(labels: Any, proba: Any, policy: ThresholdPolicy) -> ThresholdChoice:
    """The threshold ``policy`` asks for on these validation labels and probabilities.

    Candidates are the distinct probabilities themselves (``proba >= t`` flags exactly the rows
    ranked at or above each one). A precision target no threshold reaches falls back to the most
    precise threshold, with a warning and ``target_met=False``: the run still yields a model, and
    the gate judges it.
    """
    y = np.asarray(labels).astype(int)
    p = np.asarray(proba, dtype=float)
    if policy.fixed is not None:
        return ThresholdChoice(policy.fixed, policy.describe(), *_at(y, p, policy.fixed))
    if len(np.unique(y)) < 2:
        raise ValueError(
            "the validation rows hold only one class of the label: no decision threshold can be "
            "chosen on them; use more rows or fix one with training.decision_threshold"
        )
    order = np.argsort(-p, kind="stable")
    ranked, hits = p[order], y[order]
    # Flag everything down to each distinct probability: cumulative counts at the last row of a tie.
    last = np.r_[np.nonzero(np.diff(ranked))[0], len(ranked) - 1]
    tp = np.cumsum(hits)[last].astype(float)
    flagged = (last + 1).astype(float)
    precision, recall = tp / flagged, tp / hits.sum()
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=tp > 0)
    candidates = ranked[last]
    met = True
    if policy.objective == "f1":
        best = int(np.argmax(f1))
    elif policy.objective == "balanced_accuracy":
        negatives = len(hits) - hits.sum()
        best = int(np.argmax(recall - (flagged - tp) / negatives))  # TPR - FPR
    elif policy.objective == "precision":
        reaching = np.nonzero(precision >= policy.target)[0]
        met = len(reaching) > 0
        # The most recall among thresholds reaching the precision: the lowest such threshold.
        best = int(reaching[-1]) if met else int(np.argmax(precision))
        if not met:
            logger.warning(
                "No threshold reaches precision %s on the validation split (best %.3f): using the "
                "most precise one",
                policy.target,
                precision[best],
            )
    else:
        # Recall only grows as the threshold falls: the first candidate reaching it is the highest.
        best = int(np.nonzero(recall >= policy.target)[0][0])
    return ThresholdChoice(
        float(candidates[best]),
        policy.describe(),
        float(precision[best]),
        float(recall[best]),
        float(f1[best]),
        met,
    )
