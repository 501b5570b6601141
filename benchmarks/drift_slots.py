"""Worker slots held by waiting drift sensors: 20 deferrable vs 20 poke-mode, real Airflow, one run.

    .venv/bin/python benchmarks/drift_slots.py [--sensors 20] [--slots 4] [--observe 45]

Starts a real Airflow (``conveyor.local.airflow``: api-server, scheduler, dag-processor and
triggerer on PostgreSQL, LocalExecutor with ``--slots`` parallelism) and a real MLflow server,
then runs two DAGs of ``--sensors`` ``DataDriftSensor`` tasks watching an inference log that gets
no data, so every sensor keeps waiting. While they wait, task-instance states are sampled through
the REST API: a ``running`` task holds a worker slot, a ``deferred`` one waits in the triggerer.
Results: ``benchmarks/results/drift_slots.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conveyor.local.airflow import LocalAirflow, connection_env  # noqa: E402
from conveyor.local.mlflow_server import MlflowServer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "drift_slots.json"
MODEL = "bench_slots"

DAG_FILE = textwrap.dedent(
    """
    from datetime import datetime
    from airflow.sdk import DAG
    from conveyor.sensors.drift import DataDriftSensor

    for mode in ("deferrable", "poke"):
        with DAG(f"drift_slots_{{mode}}", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):
            for i in range({sensors}):
                DataDriftSensor(
                    task_id=f"drift_{{i:02d}}",
                    inference_log_url={log_url!r},
                    model_name={model!r},
                    model_version="1",
                    window_hours=1,
                    min_rows=10**9,
                    deferrable=mode == "deferrable",
                    poke_interval=5,
                    timeout=3600,
                )
    """
)


def log(message: str) -> None:
    print(f"[slots-bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def observe(
    client: Any, dag_id: str, settled: Callable[[dict[str, int]], bool], seconds: float
) -> dict[str, Any]:
    """Trigger the DAG, wait until every sensor waits (``settled``), then sample states for ``seconds``."""
    client.unpause_dag(dag_id)
    run_id = client.trigger_dag_run(dag_id)["dag_run_id"]
    started = time.monotonic()
    settled_at, steady = None, []
    while time.monotonic() - started < seconds + 240:
        states = dict(
            collections.Counter(ti["state"] or "none" for ti in client.task_instances(dag_id, run_id))
        )
        if settled_at is None and settled(states):
            settled_at = time.monotonic()
        if settled_at is not None:
            steady.append(states)
            if time.monotonic() - settled_at >= seconds:
                break
        time.sleep(2)
    client.cancel_dag_run(dag_id, run_id)
    if not steady:
        raise RuntimeError(f"{dag_id}: sensors never settled into waiting; last states {states}")
    return {
        "run_id": run_id,
        "seconds_to_settle": round(settled_at - started, 1),
        "max_running": max(s.get("running", 0) for s in steady),
        "max_deferred": max(s.get("deferred", 0) for s in steady),
        "min_waiting_for_slot": min(s.get("queued", 0) + s.get("scheduled", 0) for s in steady),
        "last_sample": steady[-1],
        "samples": len(steady),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=20)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--observe", type=float, default=30.0, help="seconds of steady state to sample")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="drift-slots-"))
    dags = work / "dags"
    dags.mkdir()
    # A log root that exists but holds no rows yet: the sensors wait (a missing root fails them).
    (work / "empty-log").mkdir()
    (dags / "drift_slots.py").write_text(
        DAG_FILE.format(sensors=args.sensors, log_url=str(work / "empty-log"), model=MODEL)
    )
    with MlflowServer(root=work / "mlflow") as mlflow_server:
        from mlflow import MlflowClient

        client = MlflowClient(mlflow_server.url)
        client.create_registered_model(MODEL)
        run = client.create_run(client.create_experiment(MODEL))
        # The sensors resolve the version and then only wait: no model is ever loaded.
        client.create_model_version(MODEL, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        airflow = LocalAirflow(
            home=work / "airflow",
            dags_folder=dags,
            parallelism=args.slots,
            extra_env=connection_env(mlflow_server.url),
        )
        started = time.monotonic()
        with airflow:
            log(f"Airflow up in {time.monotonic() - started:.0f}s (LocalExecutor, parallelism {args.slots})")
            with airflow.client(timeout=60.0) as api:
                results = {}
                for mode in ("deferrable", "poke"):
                    dag_id = f"drift_slots_{mode}"
                    api.wait_for_dag(dag_id, timeout=180)
                    log(f"{dag_id}: triggering {args.sensors} sensors")
                    if mode == "deferrable":
                        settled = lambda s: s.get("deferred", 0) == args.sensors  # noqa: E731
                    else:
                        settled = lambda s: s.get("running", 0) >= min(args.slots, args.sensors)  # noqa: E731
                    results[mode] = observe(api, dag_id, settled, args.observe)
                    log(f"{dag_id}: {results[mode]}")
    payload = {"sensors": args.sensors, "worker_slots": args.slots, "observed_s": args.observe, **results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print("| mode | worker slots held while waiting | sensors deferred | sensors queued for a slot |")
    print("|---|---:|---:|---:|")
    for mode, r in results.items():
        held = f"{r['max_running']} of {args.slots}"
        print(f"| {mode} | {held} | {r['max_deferred']} | {r['min_waiting_for_slot']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
