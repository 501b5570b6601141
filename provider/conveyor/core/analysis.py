"""Canary analysis: is the new version at least as healthy as stable on the same live traffic?

Modelled on Argo Rollouts' AnalysisRun: each *measurement* compares the canary with stable over
one interval and ends Successful, Failed or Inconclusive (too little traffic to say); a run of
``count`` measurements fails as soon as more than ``failure_limit`` measurements failed. Both
slots see the same request mix (a random or sticky split of the same stream), so a difference in
error rate, latency or prediction distribution is a difference between the models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from conveyor.core.scoring import online_aggregate

if TYPE_CHECKING:
    from conveyor.core.contract import ModelContract


class Verdict(StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class SlotSample:
    """What one slot did during a measurement interval (errors are failed predictions)."""

    requests: int
    errors: int
    latencies_s: Sequence[float] = ()
    scores: Sequence[float] = ()
    online: Sequence[float] = ()  # per labelled row: its share of the online metric

    @property
    def labelled(self) -> int:
        return len(self.online)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p95_latency_s(self) -> float | None:
        return float(np.percentile(self.latencies_s, 95)) if len(self.latencies_s) else None


@dataclass(frozen=True)
class OnlineMetric:
    """The metric the canary is judged by on labelled traffic, from the new version's contract
    (``canary.online_metric``): accuracy, balanced accuracy or F1 for classifiers, MAE for
    regressors."""

    name: str
    higher_is_better: bool
    max_degradation: float


def online_metric(contract: ModelContract | None) -> OnlineMetric | None:
    """The contract's online metric; none for a version served without a contract."""
    if contract is None:
        return None
    canary = contract.canary
    return OnlineMetric(canary.online_metric, canary.higher_is_better, canary.max_degradation)


@dataclass(frozen=True)
class AnalysisConfig:
    """Thresholds of one canary analysis; ``None`` switches a check off.

    Latency is judged relative to stable (``ratio`` x stable p95 + ``slack``) because absolute
    milliseconds differ between a laptop and a server; ``max_p95_latency_s`` adds a hard cap.
    Prediction shift is the two-sample Kolmogorov-Smirnov statistic between the canary's and
    stable's scores: an effect size in [0, 1], unlike a p-value that flags trivia at high traffic.
    It is a proxy for "something broke" where labels are missing; when enough labels arrived and
    the canary's online metric holds, a shift is accepted: a model retrained after drift is
    *meant* to score differently from the stale stable one. The online metric and how much worse
    it may get come from the new version's contract; ``max_online_degradation`` overrides the
    contract's ``canary.max_degradation`` for one rollout.
    """

    interval_s: float = 30.0
    count: int = 3
    failure_limit: int = 0
    inconclusive_limit: int = 0
    min_requests: int = 20
    max_error_rate: float = 0.01
    max_p95_latency_ratio: float | None = 3.0
    latency_slack_s: float = 0.005
    max_p95_latency_s: float | None = None
    max_score_shift: float | None = 0.3
    max_online_degradation: float | None = None
    min_labelled: int = 30

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.count < 1:
            raise ValueError("analysis needs interval_s > 0 and count >= 1")
        if self.failure_limit < 0 or self.inconclusive_limit < 0:
            raise ValueError("failure_limit and inconclusive_limit must be >= 0")
        if not 0 <= self.max_error_rate <= 1:
            raise ValueError(f"max_error_rate must be in [0, 1], got {self.max_error_rate}")
        if self.max_online_degradation is not None and not self.max_online_degradation >= 0:
            raise ValueError(f"max_online_degradation must be >= 0, got {self.max_online_degradation}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> AnalysisConfig:
        """Build from user input (admin API, DAG params), naming any key that is not a setting."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown analysis setting(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Check:
    name: str
    passed: bool | None  # None: not enough data to judge
    value: float | None
    limit: float | None
    detail: str


@dataclass
class Measurement:
    verdict: Verdict
    checks: list[Check] = field(default_factory=list)

    @property
    def reason(self) -> str:
        failed = [c.detail for c in self.checks if c.passed is False]
        if failed:
            return "; ".join(failed)
        unknown = [c.detail for c in self.checks if c.passed is None]
        return "; ".join(unknown) if self.verdict is Verdict.INCONCLUSIVE else "all checks passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "checks": [asdict(c) for c in self.checks],
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Measurement:
        """The measurement ``to_dict`` wrote (the gateway's state store keeps rollouts this way)."""
        return cls(Verdict(values["verdict"]), [Check(**check) for check in values["checks"]])


def measure(
    canary: SlotSample, stable: SlotSample, config: AnalysisConfig, online: OnlineMetric | None = None
) -> Measurement:
    """Judge one interval of canary traffic against stable's; ``online`` (from the contract) is the
    labelled-traffic check, none for a version served without a contract."""
    if canary.requests < config.min_requests:
        return Measurement(
            Verdict.INCONCLUSIVE,
            [
                Check(
                    "traffic",
                    None,
                    canary.requests,
                    config.min_requests,
                    f"canary served {canary.requests} requests, "
                    f"fewer than min_requests={config.min_requests}",
                )
            ],
        )
    checks = [
        Check(
            "error_rate",
            canary.error_rate <= config.max_error_rate,
            canary.error_rate,
            config.max_error_rate,
            f"canary error rate {canary.error_rate:.3f} vs limit {config.max_error_rate:.3f}",
        )
    ]
    canary_p95 = canary.p95_latency_s
    if config.max_p95_latency_s is not None and canary_p95 is not None:
        checks.append(
            Check(
                "p95_latency",
                canary_p95 <= config.max_p95_latency_s,
                canary_p95,
                config.max_p95_latency_s,
                f"canary p95 latency {canary_p95 * 1e3:.1f} ms "
                f"vs cap {config.max_p95_latency_s * 1e3:.1f} ms",
            )
        )
    stable_p95 = stable.p95_latency_s
    if config.max_p95_latency_ratio is not None and canary_p95 is not None:
        if stable_p95 is None:
            checks.append(
                Check("p95_latency_ratio", None, canary_p95, None, "stable served no requests to compare")
            )
        else:
            limit = config.max_p95_latency_ratio * stable_p95 + config.latency_slack_s
            checks.append(
                Check(
                    "p95_latency_ratio",
                    canary_p95 <= limit,
                    canary_p95,
                    limit,
                    f"canary p95 latency {canary_p95 * 1e3:.1f} ms vs {limit * 1e3:.1f} ms "
                    f"(stable p95 {stable_p95 * 1e3:.1f} ms x {config.max_p95_latency_ratio} + slack)",
                )
            )
    online_check = _online_check(canary, stable, config, online)
    if config.max_score_shift is not None:
        if len(canary.scores) < config.min_requests or len(stable.scores) < config.min_requests:
            checks.append(
                Check(
                    "score_shift",
                    None,
                    None,
                    config.max_score_shift,
                    "too few scores to compare distributions",
                )
            )
        else:
            shift = float(stats.ks_2samp(canary.scores, stable.scores).statistic)
            detail = (
                f"prediction distribution shift vs stable (KS) {shift:.3f} "
                f"vs limit {config.max_score_shift:.3f}"
            )
            passed = shift <= config.max_score_shift
            if not passed and online is not None and online_check is not None and online_check.passed:
                passed, detail = True, f"{detail}, accepted: online {online.name} on labels holds"
            checks.append(Check("score_shift", passed, shift, config.max_score_shift, detail))
    if online_check is not None:
        checks.append(online_check)
    if any(c.passed is False for c in checks):
        return Measurement(Verdict.FAILED, checks)
    if any(c.passed is None for c in checks):
        return Measurement(Verdict.INCONCLUSIVE, checks)
    return Measurement(Verdict.SUCCESSFUL, checks)


def _online_check(
    canary: SlotSample, stable: SlotSample, config: AnalysisConfig, online: OnlineMetric | None
) -> Check | None:
    """The online metric on labelled feedback; ``None`` while either slot has too few labels."""
    if online is None or min(canary.labelled, stable.labelled) < max(config.min_labelled, 1):
        return None
    allowed = config.max_online_degradation
    if allowed is None:
        allowed = online.max_degradation
    new = online_aggregate(online.name, canary.online) or 0.0
    old = online_aggregate(online.name, stable.online) or 0.0
    worse_by = old - new if online.higher_is_better else new - old
    limit = old - allowed if online.higher_is_better else old + allowed
    least = _least_worse_by(online, canary.online, stable.online)
    return Check(
        f"online_{online.name}",
        least <= allowed + 1e-12,
        new,
        limit,
        f"canary online {online.name} {new:.3f} vs stable {old:.3f} (worse by {worse_by:.3f}, at least "
        f"{least:.3f} at 95% confidence; allowed to be worse by {allowed:.3f})",
    )


def _least_worse_by(online: OnlineMetric, canary: Sequence[float], stable: Sequence[float]) -> float:
    """How much worse the canary is at least, with 95% confidence (bootstrap of both slots' rows).

    A 10% canary step gets a few dozen labels per interval: its point estimate of a metric like
    balanced accuracy moves by +-0.08 between intervals on the same model, more than a 0.05
    margin, so a healthy retrained model was rolled back for a noisy interval. The canary fails
    only when even the lower end of that interval is worse than the margin; a clearly broken
    version (chance against 0.63 on hundreds of stable labels) still fails at once.
    """
    rng = np.random.default_rng(len(canary) * 1_000_003 + len(stable))  # reproducible per sample
    draws = 400
    new_rows, old_rows = np.asarray(canary, dtype=float), np.asarray(stable, dtype=float)
    new = [
        online_aggregate(online.name, new_rows[rng.integers(0, len(new_rows), len(new_rows))])
        for _ in range(draws)
    ]
    old = [
        online_aggregate(online.name, old_rows[rng.integers(0, len(old_rows), len(old_rows))])
        for _ in range(draws)
    ]
    worse = np.asarray(old, dtype=float) - np.asarray(new, dtype=float)
    if not online.higher_is_better:
        worse = -worse
    return float(np.quantile(worse, 0.05))


@dataclass
class AnalysisRun:
    """The measurements of one canary step; ``verdict`` is None while the run is still going."""

    config: AnalysisConfig
    measurements: list[Measurement] = field(default_factory=list)

    def add(self, measurement: Measurement) -> Verdict | None:
        self.measurements.append(measurement)
        return self.verdict

    @property
    def verdict(self) -> Verdict | None:
        failed = sum(m.verdict is Verdict.FAILED for m in self.measurements)
        if failed > self.config.failure_limit:
            return Verdict.FAILED
        if len(self.measurements) < self.config.count:
            return None
        inconclusive = sum(m.verdict is Verdict.INCONCLUSIVE for m in self.measurements)
        return Verdict.INCONCLUSIVE if inconclusive > self.config.inconclusive_limit else Verdict.SUCCESSFUL

    @property
    def reason(self) -> str:
        verdict = self.verdict
        relevant = [
            m for m in self.measurements if verdict is None or m.verdict is verdict
        ] or self.measurements
        last = relevant[-1].reason if relevant else "no measurement yet"
        return (
            f"{len(self.measurements)}/{self.config.count} measurements; last {verdict or 'pending'}: {last}"
        )
