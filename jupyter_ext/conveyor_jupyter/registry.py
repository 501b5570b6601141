"""What a notebook user wants to know about a registered model, read from the MLflow registry.

One summary serves the ``%conveyor models`` magic and the side panel's models view, so both show
the same champion/challenger comparison. MLflow's client is synchronous: the server extension
calls these functions in a worker thread.
"""

from __future__ import annotations

from typing import Any

from conveyor.core.contract import CONTRACT_TAG, METRICS, ContractError, ModelContract

GATE_PREFIX = "conveyor.gate."
LINEAGE_PREFIX = "conveyor."
ALIASES = ("champion", "challenger")


class RegistryError(RuntimeError):
    """MLflow could not answer; the message says which server and why."""


_UNREACHABLE = (
    "Connection refused",
    "Failed to establish",
    "Max retries exceeded",
    "Name or service not known",
)


def _failure(tracking_uri: str, exc: Exception) -> RegistryError:
    """MLflow wraps connection failures in MlflowException: tell "down" apart from "refused"."""
    text = getattr(exc, "message", None) or str(exc)
    if not hasattr(exc, "error_code") or any(marker in text for marker in _UNREACHABLE):
        return RegistryError(f"MLflow at {tracking_uri} is unreachable: {text[:300]}")
    return RegistryError(f"MLflow at {tracking_uri} failed: {text[:300]}")


def _client(tracking_uri: str):
    from mlflow import MlflowClient

    if not tracking_uri:
        raise RegistryError("no MLflow tracking URI configured (set MLFLOW_TRACKING_URI)")
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def model_summary(tracking_uri: str, name: str, max_versions: int = 20) -> dict[str, Any]:
    """Versions (newest first) with aliases, run metrics, gate results and lineage tags."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        model = client.get_registered_model(name)
        versions = client.search_model_versions(
            f"name='{name}'", max_results=max_versions, order_by=["version_number DESC"]
        )
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"no registered model named {name!r} on {tracking_uri}") from None
        raise _failure(tracking_uri, exc) from None
    except Exception as exc:  # connection refused, DNS, timeouts: surfaced, not swallowed
        raise _failure(tracking_uri, exc) from None

    aliases_by_version: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases_by_version.setdefault(str(version), []).append(alias)
    rows = []
    for mv in versions:
        metrics: dict[str, float] = {}
        if mv.run_id:
            try:
                metrics = dict(client.get_run(mv.run_id).data.metrics)
            except MlflowException:
                metrics = {}  # run deleted: the version stays listed, without metrics
        tags = dict(mv.tags or {})
        rows.append(
            {
                "version": str(mv.version),
                "aliases": sorted(aliases_by_version.get(str(mv.version), [])),
                "run_id": mv.run_id,
                "created": mv.creation_timestamp,
                "status": mv.status,
                "metrics": metrics,
                "gate": {
                    k.removeprefix(GATE_PREFIX): v for k, v in tags.items() if k.startswith(GATE_PREFIX)
                },
                "lineage": {
                    k.removeprefix(LINEAGE_PREFIX): v
                    for k, v in tags.items()
                    if k.startswith(LINEAGE_PREFIX) and not k.startswith(GATE_PREFIX) and k != CONTRACT_TAG
                },
                "contract": contract_summary(tags),
            }
        )
    return {
        "name": name,
        "aliases": {alias: str(v) for alias, v in (model.aliases or {}).items()},
        "versions": rows,
        "comparison": compare_aliases(rows),
    }


def contract_summary(tags: dict[str, str]) -> dict[str, Any] | None:
    """What a person needs from a version's contract to read its numbers; ``None`` without one,
    ``{"error": ...}`` when the stored one does not parse."""
    text = tags.get(CONTRACT_TAG)
    if not text:
        return None
    try:
        contract = ModelContract.from_tag(text)
    except ContractError as exc:
        return {"error": str(exc)}
    return {
        "task": contract.task,
        "label": contract.label,
        "score": contract.outputs.score,
        "decision": contract.outputs.decision,
        "gate": [rule.metric for rule in contract.gate],
        "online_metric": contract.canary.online_metric,
    }


def compare_aliases(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Champion vs challenger, metric by metric, as the promotion gate would see them: with each
    metric's direction for the challenger's task, so a falling RMSE reads as the good news it is."""
    by_alias = {alias: row for row in rows for alias in row["aliases"]}
    champion, challenger = by_alias.get("champion"), by_alias.get("challenger")
    if champion is None and challenger is None:
        return []
    task = ((challenger or champion or {}).get("contract") or {}).get("task")
    directions = METRICS.get(task, {}) if task else {}
    names = sorted(set((champion or {}).get("metrics", {})) | set((challenger or {}).get("metrics", {})))
    out = []
    for metric in names:
        a = (champion or {}).get("metrics", {}).get(metric)
        b = (challenger or {}).get("metrics", {}).get(metric)
        out.append(
            {
                "metric": metric,
                "champion": a,
                "challenger": b,
                "delta": None if a is None or b is None else b - a,
                "higher_is_better": directions.get(metric),
            }
        )
    return out


def drift_summary(tracking_uri: str, name: str) -> dict[str, Any]:
    """The newest data-drift check of model ``name``: its JSON report and the paths of its plots.

    Checks are the monitoring runs that ``conveyor.core.drift.monitor`` records (docs/contracts.md,
    "Monitoring"); reading them through its names keeps the notebook and the sensors in step.
    Only finished runs count: a sensor logs the report and plots one by one and terminates the
    run last, so a running check may still lack them (or be mid-upload).
    """
    import json
    import tempfile
    from pathlib import Path

    from conveyor.core.drift.monitor import DATA_DRIFT, MONITORING_EXPERIMENT

    client = _client(tracking_uri)
    try:
        experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
        runs = (
            client.search_runs(
                [experiment.experiment_id],
                filter_string=(
                    f"tags.`conveyor.model_name` = '{name}' and tags.`conveyor.monitor.kind` = '{DATA_DRIFT}'"
                    " and attributes.status = 'FINISHED'"
                ),
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if experiment
            else []
        )
    except Exception as exc:  # MlflowException or a transport error
        raise _failure(tracking_uri, exc) from None
    if not runs:
        raise RegistryError(
            f"no drift report for model {name!r} yet "
            f"(no {DATA_DRIFT} run in experiment {MONITORING_EXPERIMENT!r})"
        )
    run = runs[0]
    files = [f.path for f in client.list_artifacts(run.info.run_id, DATA_DRIFT)]
    report: dict[str, Any] = {}
    report_path = f"{DATA_DRIFT}/report.json"
    if report_path in files:
        with tempfile.TemporaryDirectory(prefix="conveyor-drift-") as tmp:
            local = client.download_artifacts(run.info.run_id, report_path, tmp)
            report = json.loads(Path(local).read_text())
    return {
        "name": name,
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "start_time": run.info.start_time,
        "model_version": run.data.tags.get("conveyor.model_version"),
        "metrics": dict(run.data.metrics),
        "report": report,
        "plots": sorted(p for p in files if p.endswith(".png")),
    }


def artifact_bytes(tracking_uri: str, run_id: str, path: str) -> bytes:
    """One artifact's content (a drift plot), fetched server-side so the browser needs no MLflow access.

    Each call downloads into its own folder, removed after reading: the panel asks for plots on
    every refresh, from several requests at once.
    """
    import tempfile
    from pathlib import Path

    client = _client(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="conveyor-artifact-") as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()
