"""Pipeline benchmarks, side by side in one run (ratios of medians, wall clock and CPU time):

(a) ``kedro run --pipeline training`` vs the same torch training as a plain Python script, on the
    same parquet files written once by ``kedro run --pipeline data_processing``. Besides training,
    the Kedro run does user-visible MLflow work through the Conveyor plugin: one run in a sqlite
    store with the parameters and the per-epoch history (and lineage tags). The plain script is
    therefore measured twice: ``plain_script`` (train, pickle the model, write the history) and
    ``plain_script_mlflow``, which also logs the same parameters and history to an MLflow run in a
    sqlite store, as a team tracking its runs without Kedro would. The target ratio is Kedro over
    the latter; the ratio over torch alone shows what tracking costs at all.
(b) The Great Expectations data gate (``conveyor.core.validation``, the project's suite, GX's pandas
    engine with the repeated frame copies taken out) on ~1M flight rows vs the same checks written
    in plain pandas, and the same suite through GX's stock fluent path (``get_batch().validate``,
    ``PandasExecutionEngine``, result format BASIC) as the gate ran before. All three must fail the
    same expectations.

Each repeat runs every variant once, in turn, so load on the shared machine hits them alike; the
load average is recorded before and after. CPU time (the process's own, or the child's) is
recorded beside wall time because it is far less sensitive to other work on the machine.

    .venv/bin/python benchmarks/pipeline.py [--repeats 3] [--epochs 10] [--copies 3]

Writes benchmarks/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "kedro_project"
RESULTS = ROOT / "benchmarks" / "results" / "pipeline.json"
SUITE = PROJECT / "conf" / "base" / "gx" / "flights_partition.json"

PLAIN_TRAINING = """
import json, pickle, sys
import pandas as pd, yaml
from flight_delays.training import train_classifier
data, params_file, epochs, out = sys.argv[1:5]
params = {**yaml.safe_load(open(params_file))["training"], "max_epochs": int(epochs)}
train = pd.read_parquet(f"{data}/05_model_input/train_set.parquet")
validation = pd.read_parquet(f"{data}/05_model_input/validation_set.parquet")
model, history = train_classifier(train, validation, params)
with open(out, "wb") as f:
    pickle.dump(model, f)
with open(out + ".history.json", "w") as f:
    json.dump(history, f)
"""

# The plain script plus what the plugin records of a training run: parameters and the per-epoch
# history in one MLflow run (the history in one batch request, as the plugin logs it).
PLAIN_TRAINING_MLFLOW = """
import json, pickle, sys, time
import mlflow, pandas as pd, yaml
from mlflow.entities import Metric
from flight_delays.training import train_classifier
data, params_file, epochs, out, tracking_uri = sys.argv[1:6]
params = {**yaml.safe_load(open(params_file))["training"], "max_epochs": int(epochs)}
mlflow.set_tracking_uri(tracking_uri)
mlflow.set_experiment("flight_delays_plain")
train = pd.read_parquet(f"{data}/05_model_input/train_set.parquet")
validation = pd.read_parquet(f"{data}/05_model_input/validation_set.parquet")
with mlflow.start_run() as run:
    flat = {f"training.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    mlflow.log_params(flat)
    model, history = train_classifier(train, validation, params)
    now = int(time.time() * 1000)
    series = [
        Metric(k, float(v), now, int(row["epoch"])) for row in history for k, v in row.items() if k != "epoch"
    ]
    mlflow.MlflowClient().log_batch(run.info.run_id, metrics=series, synchronous=True)
with open(out, "wb") as f:
    pickle.dump(model, f)
with open(out + ".history.json", "w") as f:
    json.dump(history, f)
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one whole process (imports included)."""
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return elapsed, _children_cpu() - cpu


def _summary(times: list[float]) -> dict[str, object]:
    return {
        "min_s": round(min(times), 3),
        "median_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
        "runs_s": [round(t, 3) for t in times],
    }


def _variants(runs: dict[str, list[tuple[float, float]]]) -> dict[str, object]:
    return {
        name: {"wall": _summary([w for w, _ in times]), "cpu": _summary([c for _, c in times])}
        for name, times in runs.items()
    }


def _ratio(runs: dict[str, list[tuple[float, float]]], top: str, bottom: str, which: int) -> float:
    return round(
        statistics.median(t[which] for t in runs[top]) / statistics.median(t[which] for t in runs[bottom]),
        3,
    )


def _interleaved(
    variants: dict[str, Callable[[], tuple[float, float]]], repeats: int, label: str
) -> dict[str, list[tuple[float, float]]]:
    """Every variant once per repeat, in turn, so load on the machine hits them alike."""
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for i in range(repeats):
        for name, run in variants.items():
            runs[name].append(run())
        line = ", ".join(
            f"{name} {times[-1][0]:.2f}s (cpu {times[-1][1]:.2f}s)" for name, times in runs.items()
        )
        print(f"  {label} repeat {i + 1}/{repeats}: {line}", flush=True)
    return runs


def bench_training(work: Path, repeats: int, epochs: int, partition: str) -> dict[str, object]:
    conf = work / "conf"
    shutil.copytree(PROJECT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    data = work / "data"
    store = f"sqlite:///{work / 'mlflow.db'}"
    (conf / "local" / "globals.yml").write_text(yaml.safe_dump({"data_root": str(data)}))
    # The plugin's store and artifacts in the scratch folder, not the project's mlflow.db: a local
    # conveyor.yml replaces the base file's kedro: section, as a user's conf/local would.
    contract = yaml.safe_load((PROJECT / "conf" / "base" / "conveyor.yml").read_text())
    kedro_section = {**contract["kedro"], "tracking_uri": store, "artifact_location": str(work / "art")}
    (conf / "local" / "conveyor.yml").write_text(yaml.safe_dump({"kedro": kedro_section}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {"KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    kedro = [sys.executable, "-m", "kedro", "run", "--conf-source", str(conf)]
    print(f"preparing {partition} with kedro run --pipeline data_processing ...", flush=True)
    _timed([*kedro, "--pipeline", "data_processing", "--params", f"partition={partition}"], env, PROJECT)
    params_file = str(PROJECT / "conf/base/parameters_training.yml")
    commands: dict[str, tuple[list[str], Path]] = {}
    for name, source, extra in (
        ("plain_script", PLAIN_TRAINING, []),
        ("plain_script_mlflow", PLAIN_TRAINING_MLFLOW, [store]),
    ):
        script = work / f"{name}.py"
        script.write_text(source)
        out = str(work / f"{name}.pkl")
        commands[name] = (
            [sys.executable, str(script), str(data), params_file, str(epochs), out, *extra],
            work,
        )
    commands["kedro_run_training"] = (
        [*kedro, "--pipeline", "training", "--params", f"training.max_epochs={epochs}"],
        PROJECT,
    )
    runs = _interleaved(
        {name: (lambda c=cmd, d=cwd: _timed(c, env, d)) for name, (cmd, cwd) in commands.items()},
        repeats,
        "training",
    )
    return {
        "partition": partition,
        "max_epochs": epochs,
        **_variants(runs),
        "ratio_kedro_over_plain_mlflow": {
            "wall": _ratio(runs, "kedro_run_training", "plain_script_mlflow", 0),
            "cpu": _ratio(runs, "kedro_run_training", "plain_script_mlflow", 1),
        },
        "ratio_kedro_over_plain_torch_only": {
            "wall": _ratio(runs, "kedro_run_training", "plain_script", 0),
            "cpu": _ratio(runs, "kedro_run_training", "plain_script", 1),
        },
        "note": (
            "whole processes, imports included; kedro and plain_script_mlflow both log the parameters "
            "and the per-epoch history to an MLflow run in a sqlite store"
        ),
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


def stock_gx(frame, suite: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    """The suite through GX's stock fluent path, as the gate ran it before its own engine: a pandas
    datasource, ``get_batch().validate`` in result format BASIC."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("stock")
        .add_dataframe_asset("flights")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame.copy()})
    )
    result = batch.validate(
        gx.ExpectationSuite(**suite), result_format="BASIC", expectation_parameters=parameters
    )
    return sorted(
        f"{r.expectation_config.type}:{r.expectation_config.kwargs.get('column')}"
        for r in result.results
        if not r.success
    )


def _cpu_timed(work: Callable[[], Any], into: list[Any]) -> tuple[float, float]:
    cpu, start = time.process_time(), time.perf_counter()
    into.append(work())
    return time.perf_counter() - start, time.process_time() - cpu


def bench_gate(repeats: int, copies: int, stock: bool) -> dict[str, object]:
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
    reports: list[Any] = []
    verdicts: dict[str, list[list[str]]] = {"pandas": [], "gx_stock": []}
    variants: dict[str, Callable[[], tuple[float, float]]] = {
        "gx_gate": lambda: _cpu_timed(
            lambda: validate_frame(frame, suite, dataset=f"flights x{copies}", parameters=parameters), reports
        ),
        "pandas": lambda: _cpu_timed(lambda: pandas_gate(frame, suite, parameters), verdicts["pandas"]),
    }
    if stock:
        variants["gx_stock"] = lambda: _cpu_timed(
            lambda: stock_gx(frame, suite, parameters), verdicts["gx_stock"]
        )
    runs = _interleaved(variants, repeats, "gate")
    # Same verdicts, or the comparison would be meaningless.
    report = reports[-1]
    gx_failed = sorted(f"{f.expectation}:{f.column}" for f in report.failures)
    assert report.evaluated == len(suite["expectations"]) and not report.skipped, report.skipped
    for name, seen in verdicts.items():
        assert all(v == gx_failed for v in seen), (name, gx_failed, seen)
    assert first.success and report.success, report.failures
    result: dict[str, object] = {
        "rows": len(frame),
        "expectations": report.evaluated,
        "failed_warnings": gx_failed,
        "gx_first_call_incl_import_s": round(warmup, 3),
        **_variants(runs),
        "ratio_gx_gate_over_pandas": {
            "wall": _ratio(runs, "gx_gate", "pandas", 0),
            "cpu": _ratio(runs, "gx_gate", "pandas", 1),
        },
    }
    if stock:
        result["ratio_gx_stock_over_pandas"] = {
            "wall": _ratio(runs, "gx_stock", "pandas", 0),
            "cpu": _ratio(runs, "gx_stock", "pandas", 1),
        }
    result["same_verdict"] = True
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10, help="max epochs for every training variant")
    parser.add_argument("--partition", default="2013-01")
    parser.add_argument(
        "--copies", type=int, default=3, help="copies of the 336,776 flights for the gate (~1M)"
    )
    parser.add_argument(
        "--no-stock", action="store_true", help="leave out GX's stock path (the slowest variant)"
    )
    args = parser.parse_args()
    result: dict[str, object] = {
        "benchmark": "pipeline",
        "machine": {
            "cpus": os.cpu_count(),
            "shared": "other work ran on this machine during the run; see the load averages",
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
        },
        "repeats": args.repeats,
    }
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        print("(a) kedro run --pipeline training vs plain scripts", flush=True)
        result["training"] = bench_training(Path(tmp), args.repeats, args.epochs, args.partition)
    print("(b) GX gate vs plain pandas", flush=True)
    result["data_gate"] = bench_gate(args.repeats, args.copies, stock=not args.no_stock)
    result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
