"""Prometheus metrics of the gateway (names fixed in docs/contracts.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from conveyor.core.contract import ModelContract
from conveyor.core.rollout import State

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
# A regressor's values have no fixed range, and a Prometheus histogram's buckets are fixed per
# metric: 1-2-5 steps from 0.01 to 5e6 on both sides of zero (51 bounds) keep a quantile within
# a factor of 2.5 whatever the unit, and a shift of the distribution visible.
_MAGNITUDES = tuple(m * 10.0**e for e in range(-2, 7) for m in (1, 2, 5))
VALUE_BUCKETS = (*(-m for m in reversed(_MAGNITUDES)), 0.0, *_MAGNITUDES)
WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class InferenceLogMetrics:
    """The inference-log writer's ``LogEvents`` as Prometheus series: a row answered but not logged
    must show up on a dashboard and in an alert, not only in the gateway's log file."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows_written = Counter(
            "conveyor_inference_log_rows_written",
            "Rows written to the inference log, by kind (predictions, feedback).",
            ("kind",),
            registry=registry,
        )
        self.rows_failed = Counter(
            "conveyor_inference_log_rows_failed",
            "Rows set aside in the dead-letter file instead of the log (cause: encode, storage).",
            ("kind", "cause"),
            registry=registry,
        )
        self.rows_dropped = Counter(
            "conveyor_inference_log_rows_dropped",
            "Rows lost: queue full, or storage refused both the log and the dead-letter file.",
            ("kind", "cause"),
            registry=registry,
        )
        self.queue_rows = Gauge(
            "conveyor_inference_log_queue_rows",
            "Rows queued in memory, not yet written.",
            registry=registry,
        )
        self.write_seconds_histogram = Histogram(
            "conveyor_inference_log_write_seconds",
            "Time to write one flush of one kind (encode, store, dead-letter).",
            ("kind",),
            buckets=WRITE_BUCKETS,
            registry=registry,
        )

    def track_queue(self, queued_rows: Callable[[], int]) -> None:
        self.queue_rows.set_function(queued_rows)

    def written(self, kind: str, rows: int) -> None:
        self.rows_written.labels(kind).inc(rows)

    def failed(self, kind: str, rows: int, cause: str) -> None:
        self.rows_failed.labels(kind, cause).inc(rows)

    def dropped(self, kind: str, rows: int, cause: str) -> None:
        self.rows_dropped.labels(kind, cause).inc(rows)

    def write_seconds(self, kind: str, seconds: float) -> None:
        self.write_seconds_histogram.labels(kind).observe(seconds)


class GatewayMetrics:
    """One registry per gateway, so tests running several gateways in one process never collide."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("deployment", "slot", "model_version")
        self.requests = Counter(
            "conveyor_requests",
            "Scoring requests by outcome (status is the HTTP status code).",
            (*labels, "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "conveyor_request_latency_seconds",
            "Time from request parsed to prediction ready, per answering slot.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.score = Histogram(
            "conveyor_prediction_score",
            "Distribution of the score column of each version's contract, per slot and version.",
            labels,
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        self.value = Histogram(
            "conveyor_prediction_value",
            "Distribution of a regressor's score column (its contract's), per slot and version.",
            labels,
            buckets=VALUE_BUCKETS,
            registry=self.registry,
        )
        self.weight = Gauge(
            "conveyor_slot_weight",
            "Percent of live traffic a slot answers (shadow: percent of traffic mirrored to it).",
            labels,
            registry=self.registry,
        )
        self.rollout_state = Gauge(
            "conveyor_rollout_state",
            "1 for the current state of the deployment's latest rollout, 0 for the others.",
            ("deployment", "strategy", "state"),
            registry=self.registry,
        )
        self.shadow_agreement = Gauge(
            "conveyor_shadow_agreement_ratio",
            "Share of mirrored rows on which the shadow's decision equals the answering slot's.",
            ("deployment",),
            registry=self.registry,
        )
        self.inference_log = InferenceLogMetrics(self.registry)
        self._weights: dict[str, set[tuple[str, str, str]]] = {}
        self._series: dict[tuple[str, str, str], SlotSeries] = {}

    def slot_series(
        self, deployment: str, slot: str, version: str, contract: ModelContract | None
    ) -> SlotSeries:
        """The series one slot's answers feed, looked up once per slot and version: ``labels()``
        validates and locks on every call, microseconds the scoring path pays per request."""
        key = (deployment, slot, version)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = SlotSeries(self, deployment, slot, version, contract)
        return found

    def set_weights(self, deployment: str, weights: dict[str, tuple[str, float]]) -> None:
        """``weights``: slot -> (model version, percent); label sets of unloaded versions are removed."""
        current = {(deployment, slot, version) for slot, (version, _) in weights.items()}
        for stale in self._weights.get(deployment, set()) - current:
            self.weight.remove(*stale)
        for slot, (version, percent) in weights.items():
            self.weight.labels(deployment, slot, version).set(percent)
        self._weights[deployment] = current

    def set_rollout_state(self, deployment: str, strategy: str, state: State) -> None:
        for candidate in State:
            self.rollout_state.labels(deployment, strategy, candidate.value).set(int(candidate is state))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class SlotSeries:
    """The children of one slot and version: answers, latency, and its scores, a classifier's
    (probabilities) in ``conveyor_prediction_score``, a regressor's values in
    ``conveyor_prediction_value``: buckets that fit one would be useless for the other. The
    score series exists from the first score on (a shadow's answers count, its scores do not)."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        deployment: str,
        slot: str,
        version: str,
        contract: ModelContract | None,
    ) -> None:
        self.answered = metrics.requests.labels(deployment, slot, version, "200")
        self.latency = metrics.latency.labels(deployment, slot, version)
        regression = contract is not None and contract.task == "regression"
        self._family = metrics.value if regression else metrics.score
        self._labels = (deployment, slot, version)
        self._scores: Any = None

    def observe(self, latency_s: float, scores: list[float]) -> None:
        self.answered.inc()
        self.latency.observe(latency_s)
        if not scores:
            return
        if self._scores is None:
            self._scores = self._family.labels(*self._labels)
        for value in scores:
            self._scores.observe(value)
