"""The retraining request: the ``ml_ci`` run conf built from monitoring results, and its audit trail.

The monitor DAG passes the conf to Airflow's ``TriggerDagRunOperator``; the reason is recorded in
MLflow first (a run in the monitoring experiment, and tags on the watched model version), so
"why was this model retrained?" has an answer even if the triggered run later fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from mlflow import MlflowClient

RETRAIN_REASON_TAG = "conveyor.retrain.reason"
RETRAIN_REQUESTED_TAG = "conveyor.retrain.requested_at"
RETRAIN_RUN_TAG = "conveyor.retrain.monitor_run_id"


class NoRetrainNeeded(Exception):
    """No monitoring result asked for retraining; callers skip the trigger."""


# The step that visits every partition a strftime format can name, finest directive first.
_STEPS = (("h", "HIp"), ("D", "daAjwuUVWGx"), ("MS", "mbBh"), ("YS", "YyC"))
MAX_PARTITIONS = 10_000


def partitions_in_window(
    start: datetime | str, end: datetime | str, partition_format: str = "%Y-%m"
) -> list[str]:
    """The partitions (named by ``partition_format``, strftime of a partition's start, as in the
    ``airflow:`` section) that a ``[start, end)`` window touches: months for ``%Y-%m``, days for
    ``%Y-%m-%d``, hours for ``%Y-%m-%dT%H``."""
    first, last = pd.Timestamp(start), pd.Timestamp(end) - pd.Timedelta(microseconds=1)
    if last < first:
        raise ValueError(f"empty window: end {end} is not after start {start}")
    directives = {partition_format[i + 1] for i, c in enumerate(partition_format[:-1]) if c == "%"}
    freq = next((f for f, names in _STEPS if directives & set(names)), None)
    if freq is None:
        raise ValueError(f"partition format {partition_format!r} names no date or time field")
    if freq == "h":
        floor = first.floor("h")
    elif freq == "D":
        floor = first.normalize()
    else:
        floor = first.normalize().replace(day=1, month=1 if freq == "YS" else first.month)
    steps = pd.date_range(floor, last, freq=freq)
    if len(steps) > MAX_PARTITIONS:
        raise ValueError(f"the window {start}..{end} holds {len(steps)} {partition_format} partitions")
    return list(dict.fromkeys(t.strftime(partition_format) for t in steps))


def retrain_reason(results: Iterable[Mapping[str, Any] | None]) -> str | None:
    """The reasons of the results that decided ``True`` (drift or decay), joined; ``None`` if none."""
    reasons = [str(r.get("reason") or r.get("kind")) for r in results if r and r.get("decision") is True]
    return "; ".join(reasons) if reasons else None


def build_retrain_conf(
    *,
    reason: str,
    window_start: datetime | str,
    window_end: datetime | str,
    triggered_by: str,
    partitions: list[str] | None = None,
    partition_format: str = "%Y-%m",
    model_name: str | None = None,
    model_version: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``ml_ci`` conf: why, over which window, which partitions to train on, who asked.

    ``partitions`` default to those the drifted window covers ("retrain on recent data"), named
    by ``partition_format``.
    """
    if not reason or not reason.strip():
        raise ValueError("a retraining request needs a reason")
    if not triggered_by or not triggered_by.strip():
        raise ValueError("a retraining request needs triggered_by (e.g. 'ml_monitor/data_drift')")
    start, end = pd.Timestamp(window_start), pd.Timestamp(window_end)
    chosen = sorted(set(partitions)) if partitions else partitions_in_window(start, end, partition_format)
    conf: dict[str, Any] = {
        "reason": reason.strip(),
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "partitions": ",".join(chosen),
        "triggered_by": triggered_by.strip(),
    }
    if model_name:
        conf["model_name"] = model_name
    if model_version:
        conf["model_version"] = str(model_version)
    if details:
        conf["details"] = dict(details)
    return conf


def conf_from_results(
    results: Iterable[Mapping[str, Any] | None],
    triggered_by: str,
    partitions: list[str] | None = None,
    partition_format: str = "%Y-%m",
) -> dict[str, Any]:
    """The conf for the results that fired; raises ``NoRetrainNeeded`` when none did."""
    fired = [r for r in results if r and r.get("decision") is True]
    reason = retrain_reason(fired)
    if reason is None:
        raise NoRetrainNeeded("no drift or performance decay in the monitoring results")
    first = fired[0]
    starts = [r["window"]["start"] for r in fired]
    ends = [r["window"]["end"] for r in fired]
    return build_retrain_conf(
        reason=reason,
        window_start=min(starts),
        window_end=max(ends),
        triggered_by=triggered_by,
        partitions=partitions,
        partition_format=partition_format,
        model_name=first.get("model_name"),
        model_version=first.get("model_version"),
        details={"monitor_runs": [r.get("mlflow_run_id") for r in fired]},
    )


def record_retrain_request(
    client: MlflowClient, conf: Mapping[str, Any], experiment: str = "conveyor-monitoring"
) -> str:
    """Log the request as a monitoring run and tag the watched model version; returns the run id."""
    from conveyor.core.drift.monitor import Window, record_run

    window = Window(pd.Timestamp(conf["window"]["start"]), pd.Timestamp(conf["window"]["end"]))
    model_name, version = conf.get("model_name"), conf.get("model_version")
    run_id = record_run(
        client,
        kind="retrain_request",
        model_name=model_name or "unknown",
        model_version=version or "unknown",
        window=window,
        decision=True,
        metrics={},
        report=dict(conf),
        figures={},
        experiment=experiment,
    )
    client.set_tag(run_id, RETRAIN_REASON_TAG, conf["reason"][:5000])
    if model_name and version:
        client.set_model_version_tag(model_name, version, RETRAIN_REASON_TAG, conf["reason"][:5000])
        client.set_model_version_tag(
            model_name, version, RETRAIN_REQUESTED_TAG, pd.Timestamp.now(tz="UTC").isoformat()
        )
        client.set_model_version_tag(model_name, version, RETRAIN_RUN_TAG, run_id)
    return run_id
