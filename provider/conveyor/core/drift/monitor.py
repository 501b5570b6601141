"""One monitoring check, end to end: read the inference-log window, test it, record it everywhere.

Sensors (deferrable or poke), notebooks and the demo call these functions; the Airflow classes
only decide *when*. Every result goes to MLflow (a run in the monitoring experiment with metrics,
the JSON report and plots), to the Pushgateway when one is configured, and back to the caller as
plain JSON.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from conveyor.core import inference_log, metrics_export
from conveyor.core.drift import DriftConfig
from conveyor.core.drift.model_store import (
    FEATURES,
    PREDICTIONS,
    model_contract,
    model_detector,
    reference_metrics,
)
from conveyor.core.drift.performance import check_performance, monitored_metrics, performance_over_time
from conveyor.core.drift.report import (
    drift_report_html,
    figure_png,
    plot_feature_drift,
    plot_performance_over_time,
)
from conveyor.core.drift.window import Window, read_window
from conveyor.core.experiments import experiment_id

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

MONITORING_EXPERIMENT = "conveyor-monitoring"
DATA_DRIFT = "data_drift"
PREDICTION_DRIFT = "prediction_drift"
PERFORMANCE = "performance"


def record_run(
    client: MlflowClient,
    *,
    kind: str,
    model_name: str,
    model_version: str,
    window: Window,
    decision: bool,
    metrics: dict[str, float],
    report: dict[str, Any],
    figures: dict[str, Any],
    texts: dict[str, str] | None = None,
    experiment: str = MONITORING_EXPERIMENT,
) -> str:
    """One finished MLflow run per check, tagged so the UI can filter by model, version and kind.

    The run is terminated only after its last artifact is logged: readers (the notebook's drift
    view) take finished runs only, so they never see a check half-recorded. A check that fails
    while recording ends FAILED rather than RUNNING forever.
    """
    from mlflow.entities import Metric

    run = client.create_run(
        experiment_id(client, experiment),
        run_name=f"{kind}-{model_name}-v{model_version}-{window.end:%Y%m%dT%H%M}",
        tags={
            "conveyor.monitor.kind": kind,
            "conveyor.model_name": model_name,
            "conveyor.model_version": str(model_version),
            "conveyor.window.start": window.start.isoformat(),
            "conveyor.window.end": window.end.isoformat(),
            "conveyor.monitor.decision": str(decision).lower(),
        },
    )
    run_id = run.info.run_id
    try:
        now = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
        client.log_batch(
            run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None]
        )
        client.log_dict(run_id, report, f"{kind}/report.json")
        for path, fig in figures.items():
            client.log_figure(run_id, fig, f"{kind}/{path}")
        for path, text in (texts or {}).items():
            client.log_text(run_id, text, f"{kind}/{path}")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def drift_check(
    client: MlflowClient,
    *,
    model_name: str,
    model_version: str,
    log_url: str,
    window: Window,
    target: str = FEATURES,
    config: DriftConfig | None = None,
    slot: str | None = None,
    max_rows: int | None = None,
    experiment: str = MONITORING_EXPERIMENT,
    pushgateway_url: str | None = None,
    storage_options: dict | None = None,
) -> dict[str, Any]:
    """Test the window against the version's reference; record and return the JSON payload.

    Any input problem (empty window, missing columns, NaNs, unseen categories, corrupt detector)
    raises before anything is recorded, so a broken input can never read as drift.
    """
    detector = model_detector(client, model_name, model_version, target, config)
    frame = read_window(log_url, window, model_version, slot, max_rows, storage_options)
    result = detector.check(frame)
    kind = DATA_DRIFT if target == FEATURES else PREDICTION_DRIFT
    log.info(
        "%s: %s v%s window %s..%s rows=%d drift=%s features=%s",
        kind,
        model_name,
        model_version,
        window.start,
        window.end,
        result.n_window,
        result.is_drift,
        result.drifted_features,
    )
    report = result.to_dict()
    metrics = {"drift_detected": float(result.is_drift), "drift_share": result.drift_share}
    for feature in result.features:
        metrics[f"p_value.{feature.feature}"] = feature.p_value
        metrics[f"psi.{feature.feature}"] = feature.psi
    if result.p_value is not None:
        metrics["p_value"] = result.p_value
    figures, texts = {}, {}
    if result.features:
        fig = plot_feature_drift(detector, frame, result)
        figures["feature_drift.png"] = fig
        texts["report.html"] = drift_report_html(
            result, figure_png(fig), f"{kind}: {model_name} v{model_version}"
        )
    run_id = record_run(
        client,
        kind=kind,
        model_name=model_name,
        model_version=model_version,
        window=window,
        decision=result.is_drift,
        metrics=metrics,
        report={"window": window.to_dict(), **report},
        figures=figures,
        texts=texts,
        experiment=experiment,
    )
    if pushgateway_url:
        registry = metrics_export.drift_registry(
            model_name, f"{kind}/{result.backend}-{result.method}", report
        )
        metrics_export.push(pushgateway_url, registry, model_name, kind)
    reason = (
        f"{kind.replace('_', ' ')} in {', '.join(result.drifted_features) or 'the joint distribution'}"
        if result.is_drift
        else None
    )
    return {
        "kind": kind,
        "model_name": model_name,
        "model_version": str(model_version),
        "window": window.to_dict(),
        "decision": result.is_drift,
        "reason": reason,
        "mlflow_run_id": run_id,
        "result": report,
    }


def performance_check(
    client: MlflowClient,
    *,
    model_name: str,
    model_version: str,
    log_url: str,
    window: Window,
    labels_until: datetime | str | pd.Timestamp | None = None,
    thresholds: dict[str, float] | None = None,
    tolerance: float = 0.05,
    metrics: tuple[str, ...] | None = None,
    min_labelled: int = 200,
    slot: str | None = None,
    freq: str = "1D",
    experiment: str = MONITORING_EXPERIMENT,
    pushgateway_url: str | None = None,
    storage_options: dict | None = None,
) -> dict[str, Any]:
    """Join the window's predictions with labels (arriving up to ``labels_until``) and score them
    under the version's contract (its metrics and, by default, its gate thresholds)."""
    contract = model_contract(client, model_name, model_version)
    metrics = monitored_metrics(contract, metrics)
    predictions = read_window(log_url, window, model_version, slot, storage_options=storage_options)
    feedback = inference_log.read_feedback(
        log_url, window.start, labels_until or pd.Timestamp.now(tz="UTC"), storage_options=storage_options
    )
    labelled = inference_log.join_feedback(predictions, feedback)
    run_id_of_version = client.get_model_version(model_name, model_version).run_id
    reference = reference_metrics(client, run_id_of_version, metrics)
    result = check_performance(
        labelled,
        contract,
        reference=reference,
        thresholds=thresholds,
        tolerance=tolerance,
        metrics=metrics,
        min_labelled=min_labelled,
    )
    log.info(
        "performance: %s v%s labelled=%d metrics=%s reference=%s degraded=%s %s",
        model_name,
        model_version,
        result.n_labelled,
        result.metrics,
        result.reference,
        result.degraded,
        "; ".join(result.reasons),
    )
    timeline = performance_over_time(labelled, contract, freq=freq, metrics=metrics)
    report = {"window": window.to_dict(), **result.to_dict(), "timeline": _timeline_json(timeline)}
    fig = plot_performance_over_time(timeline, reference, result.thresholds)
    run_id = record_run(
        client,
        kind=PERFORMANCE,
        model_name=model_name,
        model_version=model_version,
        window=window,
        decision=result.degraded,
        metrics={**{f"perf.{k}": v for k, v in result.metrics.items()}, "degraded": float(result.degraded)},
        report=report,
        figures={"performance_over_time.png": fig},
        experiment=experiment,
    )
    if pushgateway_url:
        registry = metrics_export.performance_registry(model_name, str(model_version), result.metrics)
        metrics_export.push(pushgateway_url, registry, model_name, PERFORMANCE)
    return {
        "kind": PERFORMANCE,
        "model_name": model_name,
        "model_version": str(model_version),
        "window": window.to_dict(),
        "decision": result.degraded,
        "reason": "performance decay: " + "; ".join(result.reasons) if result.degraded else None,
        "mlflow_run_id": run_id,
        "result": result.to_dict(),
    }


def _timeline_json(timeline: pd.DataFrame) -> list[dict[str, Any]]:
    from conveyor.core.drift.interface import plain_json

    rows = timeline.assign(period=timeline["period"].astype(str)).to_dict(orient="records")
    return plain_json(rows)


__all__ = [
    "DATA_DRIFT",
    "MONITORING_EXPERIMENT",
    "PERFORMANCE",
    "PREDICTIONS",
    "PREDICTION_DRIFT",
    "Window",
    "drift_check",
    "performance_check",
    "read_window",
    "record_run",
]
