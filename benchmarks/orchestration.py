"""What orchestration costs: ml_ci through a real Airflow vs ``kedro run``, and a backfill vs sequential runs.

    .venv/bin/python benchmarks/orchestration.py [--repeats 3] [--months 12] [--max-rows 1500]

Everything runs here, on one machine: an MLflow server, PostgreSQL and Airflow (api-server,
scheduler, dag-processor, triggerer, LocalExecutor) from ``conveyor.local``, and the Kedro project.
Both sides train the same partition with the same parameters and log to the same MLflow server.

1. One month: ``kedro run`` of the whole pipeline (data gate, processing, training, evaluation,
   registration) vs one ``ml_ci`` run triggered over REST (validate_data, train, model_gate,
   publish_challenger), wall time from the request to the observed end (1 s polling). The two
   are interleaved ``--repeats`` times; ratio of medians. Per-task durations (Airflow's own
   start/end) show where the extra time goes.
2. ``--months`` months: one backfill over the REST API with ``max_active_runs=2`` vs the same
   months as sequential ``kedro run`` calls.

Results: ``benchmarks/results/orchestration.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "provider"))

from conveyor.clients.airflow import AirflowClient  # noqa: E402
from conveyor.local.airflow import LocalAirflow, connection_env, private_kedro_conf  # noqa: E402
from conveyor.local.mlflow_server import MlflowServer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "orchestration.json"
PROJECT = ROOT / "kedro_project"
PARTITION = "2013-02"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def kedro_run(conf: Path, mlflow_url: str, partition: str, max_rows: int, max_epochs: int) -> float:
    params = f"partition={partition},data_processing.max_rows={max_rows},training.max_epochs={max_epochs}"
    cmd = [sys.executable, "-m", "kedro", "run", "--conf-source", str(conf), "--params", params]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_url, "KEDRO_DISABLE_TELEMETRY": "1"}
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"kedro run {partition} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def airflow_run(af: AirflowClient, conf: dict[str, Any]) -> tuple[float, dict[str, float | None]]:
    started = time.perf_counter()
    run = af.trigger_dag_run("ml_ci", conf, note="benchmark")
    done = af.wait_for_run("ml_ci", run["dag_run_id"], timeout=900, poll=1.0)
    elapsed = time.perf_counter() - started
    if done["state"] != "success":
        raise RuntimeError(f"ml_ci run {run['dag_run_id']} ended {done['state']}")
    tasks = {
        ti["task_id"]: _seconds(ti.get("start_date"), ti.get("end_date"))
        for ti in af.task_instances("ml_ci", run["dag_run_id"])
    }
    return elapsed, tasks


def backfill(af: AirflowClient, months: int, conf: dict[str, Any]) -> float:
    last = f"2013-{months:02d}-01T00:00:00Z"
    started = time.perf_counter()
    af.create_backfill("ml_ci", "2013-01-01T00:00:00Z", last, max_active_runs=2, dag_run_conf=conf)
    deadline = time.monotonic() + 3600
    while True:
        runs = af.list_dag_runs("ml_ci", run_type=["backfill"], limit=100)
        states = [r["state"] for r in runs]
        if len(runs) == months and all(s in ("success", "failed") for s in states):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill not done after an hour: {states}")
        time.sleep(1.0)
    elapsed = time.perf_counter() - started
    if states.count("success") != months:
        raise RuntimeError(f"backfill runs ended {states}")
    return elapsed


def table(result: dict[str, Any]) -> str:
    one, back = result["single_month"], result["backfill"]
    rows = [
        "| measurement | kedro run | through Airflow | ratio (Airflow / kedro) |",
        "|---|---|---|---|",
        f"| one month ({PARTITION}), median of {len(one['kedro_s'])} | {one['kedro_median_s']:.1f} s | "
        f"{one['airflow_median_s']:.1f} s | {one['ratio']:.2f}x |",
        f"| {back['months']} months: sequential kedro runs vs backfill (max_active_runs=2) | "
        f"{back['sequential_kedro_s']:.0f} s | {back['backfill_s']:.0f} s | {back['ratio']:.2f}x |",
    ]
    tasks = ", ".join(f"{k} {v:.1f} s" for k, v in one["task_median_s"].items() if v is not None)
    return "\n".join(rows) + f"\n\nml_ci task durations (median): {tasks}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--months", type=int, default=12, choices=range(1, 13), metavar="1..12")
    parser.add_argument("--max-rows", type=int, default=1500)
    parser.add_argument("--max-epochs", type=int, default=2)
    args = parser.parse_args(argv)
    quick = {"max_rows": args.max_rows, "max_epochs": args.max_epochs}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-orch-") as tmp:
        folder = Path(tmp)
        conf = private_kedro_conf(folder)
        with MlflowServer(root=folder / "mlflow") as mlflow:
            airflow = LocalAirflow(
                home=folder / "airflow",
                dags_folder=ROOT / "dags",
                extra_env=connection_env(mlflow.url, kedro_conf_source=conf),
            )
            log("starting MLflow, PostgreSQL and Airflow")
            with airflow, airflow.client(timeout=60) as af:
                af.wait_for_dag("ml_ci", timeout=300)
                af.unpause_dag("ml_ci")
                kedro_s, airflow_s, task_s = [], [], []
                for i in range(args.repeats):
                    kedro_s.append(kedro_run(conf, mlflow.url, PARTITION, args.max_rows, args.max_epochs))
                    log(f"kedro run {PARTITION} #{i + 1}: {kedro_s[-1]:.1f} s")
                    elapsed, tasks = airflow_run(af, {**quick, "partitions": PARTITION})
                    airflow_s.append(elapsed)
                    task_s.append(tasks)
                    log(f"ml_ci via Airflow #{i + 1}: {elapsed:.1f} s {tasks}")
                months = [f"2013-{m:02d}" for m in range(1, args.months + 1)]
                sequential = []
                for month in months:
                    sequential.append(kedro_run(conf, mlflow.url, month, args.max_rows, args.max_epochs))
                    log(f"kedro run {month}: {sequential[-1]:.1f} s")
                log(f"backfill of {args.months} months, max_active_runs=2")
                backfill_s = backfill(af, args.months, quick)
                log(f"backfill: {backfill_s:.1f} s")
    task_ids = sorted({t for tasks in task_s for t in tasks})
    result = {
        "benchmark": "orchestration",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "params": {**quick, "partition": PARTITION, "repeats": args.repeats},
        "single_month": {
            "kedro_s": [round(x, 2) for x in kedro_s],
            "airflow_s": [round(x, 2) for x in airflow_s],
            "kedro_median_s": statistics.median(kedro_s),
            "airflow_median_s": statistics.median(airflow_s),
            "ratio": statistics.median(airflow_s) / statistics.median(kedro_s),
            "task_median_s": {
                t: statistics.median([x[t] for x in task_s if x.get(t) is not None] or [0.0])
                for t in task_ids
            },
        },
        "backfill": {
            "months": args.months,
            "max_active_runs": 2,
            "sequential_kedro_s": sum(sequential),
            "per_month_kedro_s": [round(x, 2) for x in sequential],
            "backfill_s": backfill_s,
            "ratio": backfill_s / sum(sequential),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
