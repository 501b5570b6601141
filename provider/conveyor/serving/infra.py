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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conveyor.local.gateway import GatewayServer
from conveyor.serving.models import LABEL_COLUMN, SCORE_COLUMN, resolve

SAMPLE_ARTIFACT = "evaluation/eval_set.parquet"


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


def sample_rows(model_uri: str, tracking_uri: str, count: int) -> list[dict[str, Any]]:
    """Real rows: the held-out evaluation set logged with the version's run, else its input example."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    name, version, resolved = resolve(model_uri)
    frame = None
    if name:
        run_id = MlflowClient().get_model_version(name, version).run_id
        with tempfile.TemporaryDirectory(prefix="conveyor-infra-sample-") as folder:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=SAMPLE_ARTIFACT, dst_path=folder
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
    frame = frame.drop(columns=[LABEL_COLUMN], errors="ignore").head(count)
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in json.loads(frame.to_json(orient="records"))
    ]


def output_columns(model_uri: str) -> list[str]:
    """The columns every answer of ``model_uri`` must carry.

    The required outputs its signature names; without named outputs, the columns the gateway's
    metrics, analysis and the gate read (``delay_probability``, ``delayed``).
    """
    import mlflow

    schema = mlflow.models.Model.load(model_uri).get_output_schema()
    if schema is not None and schema.has_input_names():
        return [spec.name for spec in schema.inputs if spec.required]
    return [SCORE_COLUMN, LABEL_COLUMN]


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
        columns = output_columns(resolved)
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
                problems = output_problems(response.json()["predictions"], i, len(batch), columns)
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


def output_problems(predictions: Any, offset: int, rows: int, columns: Sequence[str]) -> list[str]:
    """What is wrong with one answer to ``rows`` rows: its length, each required column it lacks
    (by name), non-finite values and scores outside [0, 1]; at most 20 lines."""
    where = f"rows {offset}..{offset + rows - 1}"
    if not isinstance(predictions, list):
        return [f"{where}: predictions are {type(predictions).__name__}, not one entry per row"]
    problems = []
    if len(predictions) != rows:
        problems.append(f"{where}: {len(predictions)} predictions for {rows} rows")
    missing = [c for c in columns if not all(isinstance(p, dict) and c in p for p in predictions)]
    if missing:
        first = predictions[0] if predictions else None
        returned = sorted(first) if isinstance(first, dict) else f"a bare {type(first).__name__} per row"
        problems.append(
            f"{where}: output lacks the column(s) {', '.join(map(repr, missing))} the model must "
            f"return (returned: {returned})"
        )
    for j, prediction in enumerate(predictions):
        values = prediction.values() if isinstance(prediction, dict) else [prediction]
        for value in values:
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                problems.append(f"row {offset + j}: non-finite output {prediction}")
                break
        score = prediction.get(SCORE_COLUMN) if isinstance(prediction, dict) else None
        if score is not None and not (_number(score) and 0.0 <= score <= 1.0):
            problems.append(f"row {offset + j}: {SCORE_COLUMN} {score!r} is not a probability in [0, 1]")
    return problems[:20]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
