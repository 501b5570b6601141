"""Infra validation: does this version load and answer in the real serving binary?

Like TFX's InfraValidator (LOAD_AND_QUERY): the candidate is loaded by a sandboxed gateway
process (the same ``conveyor serve`` production runs, on a free loopback port), real sample rows
are sent through the scoring protocol, and the version fails on a load error, a schema
mismatch, an answer without a column the model must return, a NaN or out-of-range output, or a
latency above the bound. The production gateway is never touched.

A load error ends the validation as soon as the sandbox has tried the load (``GatewayServer``
sees the deployment missing on the gateway's first answer), not after ``load_timeout_s``.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conveyor.core.contract import ContractError, ModelContract, version_contract
from conveyor.core.scoring import UnscorableModelError, checked_outputs
from conveyor.core.tracking import EVAL_SET_ARTIFACT
from conveyor.local.gateway import GatewayServer
from conveyor.serving.models import resolve


class InfraValidationError(RuntimeError):
    """The version is not servable; the message says why."""


@dataclass
class InfraReport:
    model_uri: str
    model_version: str | None = None
    load_seconds: float | None = None
    requests: int = 0
    rows: int = 0
    p50_latency_s: float | None = None
    max_latency_s: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def contract_of(model_uri: str) -> ModelContract:
    """The contract of the registered version ``model_uri`` names: what its answers must carry.

    Only registered versions carry one, so only they can be validated; the tracking URI must be
    set already.
    """
    from mlflow import MlflowClient

    name, version, _ = resolve(model_uri)
    if not name:
        raise InfraValidationError(
            f"{model_uri} is not a registered version (models:/<name>/<version> or models:/<name>@<alias>): "
            "only a registered version carries the contract that says what it must return"
        )
    try:
        return version_contract(MlflowClient(), name, version)
    except ContractError as exc:
        raise InfraValidationError(str(exc)) from None


def sample_rows(model_uri: str, tracking_uri: str, count: int) -> list[dict[str, Any]]:
    """Real rows: the held-out evaluation set logged with the version's run, else its input example.

    The contract's label is dropped: the truth is never sent to the model.
    """
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    name, version, resolved = resolve(model_uri)
    label = contract_of(model_uri).label
    frame = None
    if name:
        run_id = MlflowClient().get_model_version(name, version).run_id
        with tempfile.TemporaryDirectory(prefix="conveyor-infra-sample-") as folder:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=EVAL_SET_ARTIFACT, dst_path=folder
                )
                frame = pd.read_parquet(path)
            except Exception:  # no eval set on this run: fall back to the input example
                frame = None
    if frame is None:
        # Read the example without loading the model: a version that does not load must fail in
        # the sandbox, with the gateway's own error, not here.
        try:
            frame = mlflow.models.Model.load(resolved).load_input_example(resolved)
        except Exception as exc:
            raise InfraValidationError(
                f"{model_uri} has no evaluation set, and its input example cannot be read: {exc}"
            ) from exc
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise InfraValidationError(f"{model_uri} has neither an evaluation set nor an input example to send")
    frame = frame.drop(columns=[label], errors="ignore").head(count)
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in json.loads(frame.to_json(orient="records"))
    ]


def validate(
    model_uri: str,
    tracking_uri: str,
    rows: list[dict[str, Any]],
    *,
    batch_size: int = 10,
    max_latency_s: float = 1.0,
    load_timeout_s: float = 300.0,
    workdir: Path | None = None,
) -> InfraReport:
    """Load ``model_uri`` in a sandboxed gateway and score ``rows``; the report lists every problem."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    report = InfraReport(model_uri)
    contract = contract_of(model_uri)
    # The version, not an alias: what is validated is what the report names, however aliases move.
    _, _, resolved = resolve(model_uri)
    if workdir is None:  # the sandbox's log and inference log: nothing to keep once reported
        with tempfile.TemporaryDirectory(prefix="conveyor-infra-") as folder:
            return validate(
                model_uri,
                tracking_uri,
                rows,
                batch_size=batch_size,
                max_latency_s=max_latency_s,
                load_timeout_s=load_timeout_s,
                workdir=Path(folder),
            )
    server = GatewayServer(root=workdir, tracking_uri=tracking_uri, deployments={"sandbox": resolved})
    started = time.perf_counter()
    try:
        server.start(timeout=load_timeout_s)
    except RuntimeError as exc:
        report.load_seconds = round(time.perf_counter() - started, 2)
        report.problems.append(f"load failed: {exc}")
        return report
    try:
        report.load_seconds = round(time.perf_counter() - started, 2)
        latencies = []
        with httpx.Client(base_url=server.url, timeout=max(30.0, 10 * max_latency_s)) as http:
            for i in range(0, len(rows), batch_size):
                batch = rows[i : i + batch_size]
                sent = time.perf_counter()
                response = http.post("/invocations", json={"dataframe_records": batch})
                latencies.append(time.perf_counter() - sent)
                report.requests += 1
                if response.status_code != 200:
                    report.problems.append(
                        f"rows {i}..{i + len(batch) - 1}: HTTP {response.status_code} {response.text}"
                    )
                    break
                report.model_version = response.headers.get("x-model-version")
                problems = output_problems(response.json()["predictions"], i, len(batch), contract)
                report.problems.extend(problems)
                report.rows += len(batch)
                if problems:  # the first wrong answer says it; more rows would repeat it
                    break
        report.p50_latency_s = statistics.median(latencies)
        report.max_latency_s = max(latencies)
        if report.p50_latency_s > max_latency_s:
            report.problems.append(
                f"median latency {report.p50_latency_s:.3f}s exceeds the bound {max_latency_s}s"
            )
    finally:
        server.stop()
    return report


def output_problems(predictions: Any, offset: int, rows: int, contract: ModelContract) -> list[str]:
    """What is wrong with one answer to ``rows`` rows, as served over HTTP: its length, each
    output column of the contract it lacks (by name), then what the gate would refuse in those
    columns (non-numeric, non-finite, probabilities outside [0, 1], unknown classes)."""
    import pandas as pd

    where = f"rows {offset}..{offset + rows - 1}"
    if not isinstance(predictions, list):
        return [f"{where}: predictions are {type(predictions).__name__}, not one entry per row"]
    if len(predictions) != rows:
        return [f"{where}: {len(predictions)} predictions for {rows} rows"]
    columns = contract.outputs.required
    missing = [c for c in columns if not all(isinstance(p, dict) and c in p for p in predictions)]
    if missing:
        first = predictions[0] if predictions else None
        returned = sorted(first) if isinstance(first, dict) else f"a bare {type(first).__name__} per row"
        return [
            f"{where}: output lacks the column(s) {', '.join(map(repr, missing))} the model must "
            f"return (returned: {returned})"
        ]
    try:
        checked_outputs(contract, pd.DataFrame([{c: p[c] for c in columns} for p in predictions]), rows)
    except UnscorableModelError as exc:
        return [f"{where}: {exc}"]
    return []
