"""Pipeline benchmarks, side by side in one run (ratios of medians):

(a) ``kedro run --pipeline training`` (Kedro session, catalog, MLflow hook logging the model to a
    local sqlite store) vs the same torch training as a plain Python script, on the same
    parquet files written once by ``kedro run --pipeline data_processing``;
(b) the Great Expectations data gate (``conveyor.core.validation``, the project's suite) on
    ~1M flight rows vs the same checks written in plain pandas.

    .venv/bin/python benchmarks/pipeline.py [--repeats 3] [--epochs 10]

Writes benchmarks/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "kedro_project"
RESULTS = ROOT / "benchmarks" / "results" / "pipeline.json"
SUITE = PROJECT / "conf" / "base" / "gx" / "flights_partition.json"

PLAIN_TRAINING = """
import pickle, sys
import pandas as pd, yaml
from flight_delays.training import train_classifier
data, params_file, epochs, out = sys.argv[1:5]
params = {**yaml.safe_load(open(params_file))["training"], "max_epochs": int(epochs)}
train = pd.read_parquet(f"{data}/05_model_input/train_set.parquet")
validation = pd.read_parquet(f"{data}/05_model_input/validation_set.parquet")
model, history = train_classifier(train, validation, params)
with open(out, "wb") as f:
    pickle.dump(model, f)
"""


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return elapsed


def _summary(times: list[float]) -> dict[str, object]:
    return {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times]}


def bench_training(work: Path, repeats: int, epochs: int, partition: str) -> dict[str, object]:
    conf = work / "conf"
    shutil.copytree(PROJECT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    data = work / "data"
    (conf / "local" / "globals.yml").write_text(yaml.safe_dump({"data_root": str(data)}))
    (conf / "local" / "mlflow.yml").write_text(
        yaml.safe_dump(
            {"tracking_uri": f"sqlite:///{work / 'mlflow.db'}", "artifact_location": str(work / "art")}
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {"KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}
    kedro = [sys.executable, "-m", "kedro", "run", "--conf-source", str(conf)]
    print(f"preparing {partition} with kedro run --pipeline data_processing ...", flush=True)
    _timed([*kedro, "--pipeline", "data_processing", "--params", f"partition={partition}"], env, PROJECT)
    script = work / "plain_training.py"
    script.write_text(PLAIN_TRAINING)
    plain_cmd = [
        sys.executable,
        str(script),
        str(data),
        str(PROJECT / "conf/base/parameters_training.yml"),
        str(epochs),
        str(work / "plain.pkl"),
    ]
    kedro_cmd = [*kedro, "--pipeline", "training", "--params", f"training.max_epochs={epochs}"]
    plain, kedro_times = [], []
    for i in range(repeats):  # interleaved, so load on the machine hits both alike
        plain.append(_timed(plain_cmd, env, work))
        kedro_times.append(_timed(kedro_cmd, env, PROJECT))
        print(
            f"  training repeat {i + 1}/{repeats}: plain {plain[-1]:.1f}s, kedro {kedro_times[-1]:.1f}s",
            flush=True,
        )
    return {
        "partition": partition,
        "max_epochs": epochs,
        "plain_script": _summary(plain),
        "kedro_run_training": _summary(kedro_times),
        "ratio_kedro_over_plain": round(statistics.median(kedro_times) / statistics.median(plain), 3),
        "note": "whole processes, imports included; kedro also logs params and the pyfunc model to MLflow",
    }


def pandas_gate(df) -> list[str]:
    """The flights_partition suite's checks in plain pandas; returns the names of failed checks."""
    failed = []
    numeric = {"float64", "float32", "int64", "int32", "Float64", "Int64"}
    integer = {"int64", "int32", "Int64"}
    required = [
        "year",
        "month",
        "day",
        "hour",
        "carrier",
        "origin",
        "dest",
        "distance",
        "arr_delay",
        "time_hour",
    ]
    if len(df) < 1:
        failed.append("row_count")
    failed += [f"exists:{c}" for c in required if c not in df.columns]
    failed += [f"type:{c}" for c in ("arr_delay", "distance") if str(df[c].dtype) not in numeric]
    failed += [f"type:{c}" for c in ("hour", "year", "month", "day") if str(df[c].dtype) not in integer]
    if df["arr_delay"].notna().mean() < 0.5:
        failed.append("non_null_share:arr_delay")
    failed += [
        f"not_null:{c}" for c in ("carrier", "origin", "dest", "time_hour", "distance") if df[c].isna().any()
    ]
    if (~df["origin"].isin(["EWR", "JFK", "LGA"]) & df["origin"].notna()).any():
        failed.append("in_set:origin")
    for col, lo, hi in (("hour", 0, 23), ("month", 1, 12), ("day", 1, 31), ("distance", 1, 6000)):
        if (~df[col].between(lo, hi) & df[col].notna()).any():
            failed.append(f"between:{col}")
    if df["arr_delay"].isna().any():
        failed.append("not_null:arr_delay (warning)")
    delays = df["arr_delay"].dropna()
    if len(delays) and (delays.between(-120, 600)).mean() < 0.999:
        failed.append("between:arr_delay (warning)")
    return failed


def bench_gate(repeats: int, copies: int) -> dict[str, object]:
    import pandas as pd

    from conveyor.core.validation import load_suite, validate_frame
    from flight_delays.data import read_table

    frame = pd.concat([read_table("flights")] * copies, ignore_index=True)
    suite = load_suite(SUITE)
    start = time.perf_counter()
    first = validate_frame(frame.head(1000), suite)  # GX import + first context, reported apart
    warmup = time.perf_counter() - start
    gx_times, pandas_times = [], []
    for i in range(repeats):
        start = time.perf_counter()
        report = validate_frame(frame, suite, dataset="flights x3")
        gx_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        failed = pandas_gate(frame)
        pandas_times.append(time.perf_counter() - start)
        print(
            f"  gate repeat {i + 1}/{repeats}: GX {gx_times[-1]:.2f}s, pandas {pandas_times[-1]:.3f}s",
            flush=True,
        )
    # Same verdicts, or the comparison would be meaningless.
    gx_failed = sorted(f"{f.expectation}:{f.column}" for f in report.failures)
    assert first.success and report.success and failed == ["not_null:arr_delay (warning)"], (
        gx_failed,
        failed,
    )
    return {
        "rows": len(frame),
        "expectations": report.evaluated,
        "gx_first_call_incl_import_s": round(warmup, 3),
        "gx": _summary(gx_times),
        "pandas": _summary(pandas_times),
        "ratio_gx_over_pandas": round(statistics.median(gx_times) / statistics.median(pandas_times), 3),
        "same_verdict": True,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10, help="max epochs for both training variants")
    parser.add_argument("--partition", default="2013-01")
    parser.add_argument(
        "--copies", type=int, default=3, help="copies of the 336,776 flights for the gate (~1M)"
    )
    args = parser.parse_args()
    result: dict[str, object] = {
        "benchmark": "pipeline",
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
        },
        "repeats": args.repeats,
    }
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        print("(a) kedro run --pipeline training vs plain script", flush=True)
        result["training"] = bench_training(Path(tmp), args.repeats, args.epochs, args.partition)
    print("(b) GX gate vs plain pandas", flush=True)
    result["data_gate"] = bench_gate(args.repeats, args.copies)
    result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
