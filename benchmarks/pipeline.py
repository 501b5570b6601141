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
from typing import Any

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


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    """The suite's ``$PARAMETER`` references replaced by their values, as GX does."""
    if isinstance(value, dict):
        if "$PARAMETER" in value:
            return parameters[value["$PARAMETER"]]
        return {k: _resolve(v, parameters) for k, v in value.items()}
    return value


def _holds(kind: str, kw: dict[str, Any], df) -> bool:
    """One expectation in plain vectorised pandas, with GX's semantics: column-map checks ignore
    nulls and honour ``mostly``; ``row_condition`` filters the rows first."""
    import pandas as pd

    if kind == "table_row_count_to_be_between":
        low, high = kw.get("min_value"), kw.get("max_value")
        return (low is None or len(df) >= low) and (high is None or len(df) <= high)
    if kind == "compound_columns_to_be_unique":
        return not df.duplicated(kw["column_list"], keep=False).any()
    if kind == "column_to_exist":
        return kw["column"] in df.columns
    frame = df.query(kw["row_condition"]) if "row_condition" in kw else df
    values = frame[kw["column"]]
    if kind == "column_values_to_be_in_type_list":
        if str(values.dtype) in kw["type_list"]:
            return True
        return (
            values.dtype == object
            and values.dropna().map(type).map(lambda t: t.__name__).isin(kw["type_list"]).all()
        )
    if kind == "column_proportion_of_non_null_values_to_be_between":
        share = values.notna().mean()
        return kw.get("min_value", 0) <= share <= kw.get("max_value", 1)
    if kind == "column_values_to_not_be_null":
        ok = values.notna()
    elif kind == "column_values_to_be_null":
        ok = values.isna()
    else:
        present = values.dropna()
        if kind == "column_values_to_be_in_set":
            ok = present.isin(kw["value_set"])
        elif kind == "column_values_to_match_regex":
            ok = present.astype(str).str.contains(kw["regex"], regex=True)
        elif kind == "column_values_to_be_between":
            ok = pd.Series(True, index=present.index)
            if kw.get("min_value") is not None:
                ok &= present > kw["min_value"] if kw.get("strict_min") else present >= kw["min_value"]
            if kw.get("max_value") is not None:
                ok &= present < kw["max_value"] if kw.get("strict_max") else present <= kw["max_value"]
        else:
            raise ValueError(f"the pandas twin has no check for expect_{kind}")
    return len(ok) == 0 or ok.mean() >= kw.get("mostly", 1.0)


def pandas_gate(df, suite: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    """The suite's expectations evaluated in plain pandas, read from the same JSON so the two
    sides cannot check different things; returns ``type:column`` of each failed expectation."""
    return sorted(
        f"{e['type']}:{e['kwargs'].get('column')}"
        for e in suite["expectations"]
        if not _holds(e["type"].removeprefix("expect_"), _resolve(e["kwargs"], parameters), df)
    )


def bench_gate(repeats: int, copies: int) -> dict[str, object]:
    import pandas as pd

    from conveyor.core.validation import load_suite, validate_frame
    from flight_delays.data import read_table

    flights = read_table("flights")
    # Each copy is another year, so the table stays one row per flight (the suite checks that).
    frame = pd.concat([flights.assign(year=2013 + k) for k in range(copies)], ignore_index=True)
    parameters = {
        "row_count_min": 1,
        "row_count_max": len(frame),
        "partition_years": sorted(frame["year"].unique().tolist()),
        "partition_months": list(range(1, 13)),
    }
    suite = load_suite(SUITE)
    start = time.perf_counter()
    first = validate_frame(frame.head(1000), suite, parameters=parameters)  # GX import + first context
    warmup = time.perf_counter() - start
    gx_times, pandas_times = [], []
    for i in range(repeats):
        start = time.perf_counter()
        report = validate_frame(frame, suite, dataset=f"flights x{copies}", parameters=parameters)
        gx_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        failed = pandas_gate(frame, suite, parameters)
        pandas_times.append(time.perf_counter() - start)
        print(
            f"  gate repeat {i + 1}/{repeats}: GX {gx_times[-1]:.2f}s, pandas {pandas_times[-1]:.3f}s",
            flush=True,
        )
    # Same verdicts, or the comparison would be meaningless.
    gx_failed = sorted(f"{f.expectation}:{f.column}" for f in report.failures)
    assert report.evaluated == len(suite["expectations"]) and not report.skipped, report.skipped
    assert gx_failed == failed, (gx_failed, failed)
    assert first.success and report.success, report.failures
    return {
        "rows": len(frame),
        "expectations": report.evaluated,
        "failed_warnings": failed,
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
