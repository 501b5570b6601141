"""Infra validation: does this version load and answer in the real serving binary?

Like TFX's InfraValidator (LOAD_AND_QUERY): the candidate is loaded by a sandboxed gateway
process (the same ``conveyor serve`` production runs, on a free loopback port), real sample rows
are sent through the scoring protocol, and the version fails on a load error, a schema
mismatch, a NaN or out-of-range output, or a latency above the bound. The production gateway is
never touched.
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

from conveyor.local.gateway import GatewayServer

SAMPLE_ARTIFACT = "evaluation/eval_set.parquet"
LABEL = "delayed"


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

    from conveyor.serving.models import resolve

    mlflow.set_tracking_uri(tracking_uri)
    name, version, resolved = resolve(model_uri)
    frame = None
    if name:
        run_id = MlflowClient().get_model_version(name, version).run_id
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=SAMPLE_ARTIFACT)
            frame = pd.read_parquet(path)
        except Exception:  # no eval set on this run: fall back to the input example
            frame = None
    if frame is None:
        frame = mlflow.pyfunc.load_model(resolved).input_example
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise InfraValidationError(f"{model_uri} has neither an evaluation set nor an input example to send")
    frame = frame.drop(columns=[LABEL], errors="ignore").head(count)
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
    report = InfraReport(model_uri)
    root = workdir or Path(tempfile.mkdtemp(prefix="conveyor-infra-"))
    server = GatewayServer(root=root, tracking_uri=tracking_uri, deployments={"sandbox": model_uri})
    started = time.perf_counter()
    try:
        server.start(timeout=load_timeout_s)
    except RuntimeError as exc:
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
                report.problems.extend(_output_problems(response.json()["predictions"], i))
                report.rows += len(batch)
        report.p50_latency_s = statistics.median(latencies)
        report.max_latency_s = max(latencies)
        if report.p50_latency_s > max_latency_s:
            report.problems.append(
                f"median latency {report.p50_latency_s:.3f}s exceeds the bound {max_latency_s}s"
            )
    finally:
        server.stop()
    return report


def _output_problems(predictions: list[Any], offset: int) -> list[str]:
    problems = []
    for j, prediction in enumerate(predictions):
        values = prediction.values() if isinstance(prediction, dict) else [prediction]
        for value in values:
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                problems.append(f"row {offset + j}: non-finite output {prediction}")
                break
        score = prediction.get("delay_probability") if isinstance(prediction, dict) else None
        if score is not None and not 0.0 <= score <= 1.0:
            problems.append(f"row {offset + j}: delay_probability {score} outside [0, 1]")
    return problems[:20]
