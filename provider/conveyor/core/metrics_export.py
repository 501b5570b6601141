"""Monitoring results to Prometheus through a Pushgateway.

Drift and performance checks are batch jobs (Airflow tasks that live for seconds), which is the
case the Pushgateway exists for: Prometheus cannot scrape a task that has already exited, and the
serving gateway should not hold monitoring state or fail its requests when monitoring misbehaves.
Each push replaces its group (``job`` + ``model`` + ``monitor``), so a feature that stops drifting
shows its new p-value instead of a stale one. Metric names are those of docs/contracts.md.
"""

from __future__ import annotations

from typing import Any

JOB = "conveyor_monitoring"


def _registry_and_gauges() -> tuple[Any, dict[str, Any]]:
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    gauges = {
        "p_value": Gauge(
            "conveyor_drift_p_value",
            "Per-feature drift test p-value",
            ["model", "feature"],
            registry=registry,
        ),
        "detected": Gauge(
            "conveyor_drift_detected",
            "1 when the last check found drift",
            ["model", "detector"],
            registry=registry,
        ),
        "share": Gauge(
            "conveyor_drift_share", "Share of features that drifted", ["model"], registry=registry
        ),
        "performance": Gauge(
            "conveyor_model_performance",
            "Metric on labelled feedback",
            ["model", "model_version", "metric"],
            registry=registry,
        ),
    }
    return registry, gauges


def drift_registry(model: str, detector: str, result: dict[str, Any]) -> Any:
    """A registry holding one drift check (``result`` is ``DriftResult.to_dict()``)."""
    registry, gauges = _registry_and_gauges()
    for feature in result.get("features", []):
        if feature.get("p_value") is not None:
            gauges["p_value"].labels(model=model, feature=feature["feature"]).set(feature["p_value"])
    gauges["detected"].labels(model=model, detector=detector).set(1.0 if result["is_drift"] else 0.0)
    gauges["share"].labels(model=model).set(float(result.get("drift_share") or 0.0))
    return registry


def performance_registry(model: str, model_version: str, metrics: dict[str, float | None]) -> Any:
    registry, gauges = _registry_and_gauges()
    for metric, value in metrics.items():
        if value is not None:
            gauges["performance"].labels(model=model, model_version=model_version, metric=metric).set(value)
    return registry


def push(pushgateway_url: str, registry: Any, model: str, monitor: str, timeout: float = 10.0) -> None:
    """Replace the group ``{job, model, monitor}`` on the Pushgateway with ``registry``'s series."""
    from prometheus_client import push_to_gateway

    push_to_gateway(
        pushgateway_url,
        job=JOB,
        registry=registry,
        grouping_key={"model": model, "monitor": monitor},
        timeout=timeout,
    )
