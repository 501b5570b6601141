"""Prometheus metrics of the gateway (names fixed in docs/contracts.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from conveyor.core.rollout import State

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


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
            "Distribution of delay_probability per slot and version.",
            labels,
            buckets=SCORE_BUCKETS,
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
        self._weights: dict[str, set[tuple[str, str, str]]] = {}

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
