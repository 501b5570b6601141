"""Serving benchmark: the Conveyor gateway vs ``mlflow models serve``, same model, same machine, one run.

    .venv/bin/python benchmarks/serving.py [--seconds 8] [--repeats 2]

Measures (results in benchmarks/results/serving.json, table printed as Markdown):
- the floor: in-process ``pyfunc.predict`` (and the implementation the gateway's fast path calls)
  on 1 row and on batches;
- ``mlflow models serve`` (``--env-manager local``, 1 worker) vs the gateway (1 process) at 1 and
  32 concurrent clients, driven by ``wrk`` on loopback (Lua script rotating real rows), runs of
  the two servers interleaved so machine noise hits both alike; medians over repeats;
- the cost of canary 10 % + shadow 10 % vs stable only (throughput at 32 clients);
- rollback under load (asyncio client, 8 connections): time until every answer comes from the
  previous version, and failed requests during a blue-green switch, a canary rollback and a
  gateway reload (alias moved);
- the latency cost of the durable inference log (``--log-durable``: a spool write before each
  answer; and with ``--log-fsync``) vs the default, at 1 and 32 clients. ``--only-durable`` runs
  just this comparison and updates that part of the results file;
- ``--only-overhead [--repeats 7]``: the p50 overhead at 1 client (gateway p50 minus the
  in-process ``pyfunc.predict`` p50, measured again before each repeat), the p99 at 1 and 32
  clients, and the canary 10 % + shadow 10 % throughput cost, inference log on, repeats
  alternating (order swapped every other repeat): min / median / max and a bootstrap 95 %
  interval of the median per figure, in the ``overhead`` part of the results file.
Both servers run with one intra-op thread (``OMP_NUM_THREADS=1``) so neither is starved by a
thread pool bigger than the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conveyor.local.gateway import GatewayServer  # noqa: E402
from conveyor.local.loadgen import Outcome, run_load  # noqa: E402
from conveyor.local.mlflow_server import MlflowServer  # noqa: E402
from conveyor.local.process import free_port, log_tail, start_group, stop_group, wait_http  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "serving.json"
MODEL = "bench_flights"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- workload ------------------------------------------------------------------------------------
def real_rows(count: int) -> list[dict[str, Any]]:
    from tests.support.models import eval_frame

    frame = eval_frame().drop(columns="delayed").head(count)
    return json.loads(frame.to_json(orient="records"))


def lua_script(rows: list[dict[str, Any]], folder: Path) -> Path:
    bodies = [json.dumps({"dataframe_records": [row]}) for row in rows]
    lines = ",\n".join("[==[" + body + "]==]" for body in bodies)
    script = folder / "rows.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n{lines}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])\nend\n"
    )
    return script


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"cannot read wrk duration {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, float]:
    """One wrk run: throughput, p50/p99 latency, non-2xx and socket errors."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    pct = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.M))
    if set(pct) != {"50", "99"}:
        raise RuntimeError(f"cannot read wrk's latency distribution:\n{out}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": _seconds(pct["50"]) * 1e3,
        "p99_ms": _seconds(pct["99"]) * 1e3,
        "requests": int(re.search(r"(\d+) requests in", out)[1]),
        "failed": (int(non2xx[1]) if non2xx else 0) + (sum(map(int, errors.groups())) if errors else 0),
    }


def spread(values: list[float], draws: int = 4000) -> dict[str, Any]:
    """min / median / max of per-repeat values and a bootstrap 95 % interval of their median."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "ci95_of_median": [round(medians[int(0.025 * draws)], 3), round(medians[int(0.975 * draws)], 3)],
        "values": [round(v, 3) for v in values],
    }


def median_runs(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = tuple(k for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request") if k in runs[0])
    summary = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    summary["failed"] = sum(r["failed"] for r in runs)
    summary["runs"] = [{k: round(r[k], 3) for k in (*keys, "failed")} for r in runs]
    return summary


# ---- servers -------------------------------------------------------------------------------------
class MlflowScoringServer:
    def __init__(self, root: Path, tracking_uri: str, model_uri: str) -> None:
        self.root, self.tracking_uri, self.model_uri = root, tracking_uri, model_uri
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MlflowScoringServer:
        cmd = [
            sys.executable, "-m", "mlflow", "models", "serve", "-m", self.model_uri, "--env-manager", "local",
            "-h", "127.0.0.1", "-p", str(self.port), "-w", "1",
        ]  # fmt: skip
        # it execs ``uvicorn`` from PATH: the one of this interpreter's environment
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri, "PATH": path, **ONE_THREAD}
        self.proc = start_group(cmd, self.root / "mlflow-serve.log", env=env)
        try:
            wait_http(f"{self.url}/ping", timeout=180, proc=self.proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{log_tail(self.root / 'mlflow-serve.log')}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_group(self.proc)


# ---- measurements --------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_cpu(pid: int, url: str, script: Path, connections: int, seconds: float) -> dict[str, float]:
    """A wrk run and the server's CPU time per answered request, which other work on a shared
    machine disturbs far less than throughput: it slows a run down, it does not add CPU time."""
    before = cpu_seconds(pid)
    run = wrk(url, script, connections, seconds)
    run["cpu_us_per_request"] = (cpu_seconds(pid) - before) / max(run["requests"], 1) * 1e6
    return run


def predict_p50_ms(model: Any, frame: Any, calls: int = 300) -> float:
    for _ in range(20):
        model.predict(frame)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        model.predict(frame)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def overhead(
    work: Path, tracking_uri: str, uris: dict[str, str], rows: list[dict[str, Any]], script: Path, args: Any
) -> dict[str, Any]:
    """The gateway's own cost and tail, inference log and metrics on, with per-repeat spreads."""
    import mlflow
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    model = mlflow.pyfunc.load_model(uris["v_old"])
    frame = pd.DataFrame(rows[:1])
    load_before = os.getloadavg()
    per: dict[str, list[float]] = {}
    runs: dict[str, list[dict[str, float]]] = {}
    with GatewayServer(
        root=work / "gateway-overhead",
        tracking_uri=tracking_uri,
        deployments={"bench": uris["v_old"]},
        extra_args=["--threads", "1"],
    ) as gateway:
        admin = gateway.client()
        admin.deploy_slot("mix", uris["v_old"])
        admin.deploy_slot("mix", uris["v_new"], slot="canary")
        admin.deploy_slot("mix", uris["v_new"], slot="shadow")
        url, mix_url = f"{gateway.url}/invocations", f"{gateway.url}/deployments/mix/invocations"
        wrk(url, script, 4, 2)
        wrk(mix_url, script, 4, 2)  # warm both
        assert gateway.proc is not None
        pid = gateway.proc.pid
        weights = {"stable_only": (0, 0.0), "canary10_shadow10": (10, 0.1)}
        for repeat in range(args.repeats):
            floor_ms = predict_p50_ms(model, frame)
            one = wrk_cpu(pid, url, script, 1, args.seconds)
            many = wrk_cpu(pid, url, script, 32, args.seconds)
            mixed: dict[str, dict[str, float]] = {}
            for variant in sorted(weights, reverse=repeat % 2 == 1):
                canary, shadow = weights[variant]
                admin.set_weights("mix", canary=canary, shadow=shadow)
                mixed[variant] = wrk_cpu(pid, mix_url, script, 32, args.seconds)
            for key, run in (("gateway_c1", one), ("gateway_c32", many), *mixed.items()):
                runs.setdefault(key, []).append(run)
            cpu = {variant: run["cpu_us_per_request"] for variant, run in mixed.items()}
            values = {
                "pyfunc_predict_1_row_ms": floor_ms,
                "p50_overhead_ms_c1": one["p50_ms"] - floor_ms,
                "p99_ms_c1": one["p99_ms"],
                "p99_over_p50_c32": many["p99_ms"] / many["p50_ms"],
                "canary_shadow_throughput_cost": 1
                - mixed["canary10_shadow10"]["rps"] / mixed["stable_only"]["rps"],
                # the throughput cost where the gateway has its cores to itself
                "canary_shadow_cpu_cost": 1 - cpu["stable_only"] / cpu["canary10_shadow10"],
                "cpu_us_per_request_c1": one["cpu_us_per_request"],
                "cpu_us_per_request_c32": many["cpu_us_per_request"],
            }
            for key, value in values.items():
                per.setdefault(key, []).append(value)
            log(f"repeat {repeat}: {json.dumps({k: round(v, 3) for k, v in values.items()})}")
        shadow = admin.deployment("mix")["shadow"]
        admin.close()
    return {
        **{key: spread(values) for key, values in per.items()},
        "runs": {key: median_runs(value) for key, value in runs.items()},
        "shadow": shadow,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "seconds_per_run": args.seconds,
        "repeats": args.repeats,
    }


def floor(model_uri: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    import mlflow
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    model = mlflow.pyfunc.load_model(model_uri)
    out: dict[str, Any] = {}
    for size in (1, 32, 256):
        frame = pd.DataFrame(rows[:size])
        for label, fn in (("pyfunc_predict", model.predict), ("impl_predict", model._model_impl.predict)):
            for _ in range(20):
                fn(frame)
            times = []
            for _ in range(300 if size == 1 else 100):
                start = time.perf_counter()
                fn(frame)
                times.append(time.perf_counter() - start)
            out[f"{label}_{size}_rows_ms"] = round(statistics.median(times) * 1e3, 4)
    return out


class Load:
    """asyncio load in a thread; outcomes recorded with arrival times for rollback timing."""

    def __init__(self, url: str, rows: list[dict[str, Any]], path: str, concurrency: int = 8) -> None:
        self.bodies = [json.dumps({"dataframe_records": [row]}).encode() for row in rows]
        self.url, self.path, self.concurrency = url, path, concurrency
        self.stop = threading.Event()
        self.outcomes: list[Outcome] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(
            run_load(
                self.url,
                self.bodies,
                concurrency=self.concurrency,
                stop=self.stop,
                path=self.path,
                sink=self.outcomes,
            )
        )

    def __enter__(self) -> Load:
        self.thread.start()
        while len(self.outcomes) < 50:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)

    def settle(self, seconds: float = 2.0) -> None:
        time.sleep(seconds)


def switch_report(outcomes: list[Outcome], t0: float, target: str) -> dict[str, Any]:
    """Failed requests, and seconds from ``t0`` until the last answer not from ``target`` arrived."""
    late = [
        o.sent + o.latency_s for o in outcomes if o.ok and o.version != target and o.sent + o.latency_s >= t0
    ]
    after = [o for o in outcomes if o.sent >= t0]
    return {
        "requests": len(outcomes),
        "failed": sum(not o.ok for o in outcomes),
        "seconds_to_all_on_target": round(max(late) - t0, 4) if late else 0.0,
        "answers_after_from_target": sum(o.version == target for o in after),
        "answers_after": len(after),
    }


def rollbacks(
    gateway: GatewayServer, rows: list[dict[str, Any]], uris: dict[str, str], tracking_uri: str
) -> dict:
    from mlflow import MlflowClient

    admin = gateway.client()
    old, new = uris["v_old"].rsplit("/", 1)[1], uris["v_new"].rsplit("/", 1)[1]
    results: dict[str, Any] = {}

    admin.deploy_slot("rb", uris["v_old"])
    with Load(gateway.url, rows, "/deployments/rb/invocations") as load:
        admin.start_rollout(
            "rb", {"model_uri": uris["v_new"], "strategy": "blue_green", "keep_previous_s": 600}
        )
        admin.wait_rollout("rb", until=("switched", "failed"), poll_s=0.02)
        t0 = time.monotonic()  # the switch happened at most one poll before
        load.settle()
        results["blue_green_switch"] = switch_report(list(load.outcomes), t0, new)
        load.outcomes.clear()
        t0 = time.monotonic()
        admin.rollout_action("rb", "rollback")
        load.settle()
        results["blue_green_rollback"] = switch_report(list(load.outcomes), t0, old)
    log(f"blue-green: {results['blue_green_switch']} / {results['blue_green_rollback']}")

    analysis = {"interval_s": 3600, "count": 1}
    admin.start_rollout("rb", {"model_uri": uris["v_new"], "steps": [50, 100], "analysis": analysis})
    admin.wait_rollout("rb", until=("progressing", "failed"), poll_s=0.05)
    with Load(gateway.url, rows, "/deployments/rb/invocations") as load:
        load.settle(1.0)
        load.outcomes.clear()
        t0 = time.monotonic()
        admin.rollout_action("rb", "rollback")
        load.settle()
        results["canary_rollback"] = switch_report(list(load.outcomes), t0, old)
    log(f"canary rollback at 50%: {results['canary_rollback']}")

    client = MlflowClient(tracking_uri)
    client.set_registered_model_alias(MODEL, "bench_live", old)
    admin.deploy_slot("reload", f"models:/{MODEL}@bench_live")
    with Load(gateway.url, rows, "/deployments/reload/invocations") as load:
        client.set_registered_model_alias(MODEL, "bench_live", new)
        t0 = time.monotonic()
        admin.reload("reload")
        load.settle()
        results["gateway_reload"] = switch_report(list(load.outcomes), t0, new)
    log(f"reload (alias moved): {results['gateway_reload']}")
    admin.close()
    return results


DURABLE_MODES = {
    "default": [],
    "durable": ["--log-durable"],
    "durable_fsync": ["--log-durable", "--log-fsync"],
}


def durable_cost(
    work: Path,
    tracking_uri: str,
    model_uri: str,
    rows: list[dict[str, Any]],
    script: Path,
    seconds: float,
    repeats: int,
) -> dict[str, Any]:
    """p50/p99 of three gateways that differ only in their inference-log mode, runs interleaved."""
    gateways = {
        mode: GatewayServer(
            root=work / f"gateway-{mode}",
            tracking_uri=tracking_uri,
            deployments={"bench": model_uri},
            extra_args=[
                "--threads",
                "1",
                *flags,
                *(["--log-spool", str(work / f"spool-{mode}")] if flags else []),
            ],
        )
        for mode, flags in DURABLE_MODES.items()
    }
    runs: dict[str, list[dict[str, float]]] = {}
    try:
        for gateway in gateways.values():
            gateway.start()
            wrk(f"{gateway.url}/invocations", script, 4, 2)  # warm
        for repeat in range(repeats):
            for clients in (1, 32):
                for mode, gateway in gateways.items():
                    run = wrk(f"{gateway.url}/invocations", script, clients, seconds)
                    runs.setdefault(f"{mode}_c{clients}", []).append(run)
                    log(f"repeat {repeat} log {mode} c={clients}: {run}")
    finally:
        for gateway in gateways.values():
            gateway.stop()
    summary: dict[str, Any] = {key: median_runs(value) for key, value in runs.items()}
    summary["append"] = append_cost(work, rows)
    for clients in (1, 32):
        base = summary[f"default_c{clients}"]
        for mode in ("durable", "durable_fsync"):
            m = summary[f"{mode}_c{clients}"]
            summary[f"{mode}_vs_default_p50_c{clients}"] = round(m["p50_ms"] / base["p50_ms"], 2)
            summary[f"{mode}_vs_default_rps_c{clients}"] = round(m["rps"] / base["rps"], 2)
    return summary


def append_cost(work: Path, rows: list[dict[str, Any]], count: int = 3000) -> dict[str, Any]:
    """In-process cost of one gateway-shaped ``append_predictions`` per log mode (median, p99 in us)."""
    from conveyor.core.inference_log import InferenceLogWriter

    chunk = {
        **{k: [v] for k, v in rows[0].items()},
        "request_id": ["r"],
        "deployment": "bench",
        "slot": "stable",
        "model_name": MODEL,
        "model_version": "1",
        "delay_probability": [0.3],
        "delayed": [0],
    }
    out: dict[str, Any] = {}
    for mode, flags in DURABLE_MODES.items():
        spool = work / f"append-spool-{mode}" if flags else None
        with InferenceLogWriter(
            str(work / f"append-log-{mode}"), spool_dir=spool, fsync="--log-fsync" in flags
        ) as writer:
            writer.recovered.wait(30)
            times = []
            for _ in range(count):
                start = time.perf_counter()
                writer.append_predictions(chunk)
                times.append(time.perf_counter() - start)
        times.sort()
        out[f"{mode}_append_us"] = {
            "median": round(times[len(times) // 2] * 1e6, 1),
            "p99": round(times[int(len(times) * 0.99)] * 1e6, 1),
        }
    return out


def durable_table(d: dict[str, Any]) -> list[str]:
    lines = []
    for clients in (1, 32):
        cells = []
        for mode in DURABLE_MODES:
            m = d[f"{mode}_c{clients}"]
            cells.append(f"{mode} {m['p50_ms']:.2f} / {m['p99_ms']:.2f} ms, {m['rps']:.0f} req/s")
        lines.append(
            f"| inference log default vs durable vs durable+fsync, {clients} client(s): p50 / p99, "
            f"throughput | {'; '.join(cells)}; p50 ratio durable {d[f'durable_vs_default_p50_c{clients}']}, "
            f"fsync {d[f'durable_fsync_vs_default_p50_c{clients}']} |"
        )
    a = d["append"]
    lines.append(
        "| one `append_predictions` in-process, median / p99 | "
        + "; ".join(
            f"{mode} {a[f'{mode}_append_us']['median']} / {a[f'{mode}_append_us']['p99']} us"
            for mode in DURABLE_MODES
        )
        + " |"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each wrk run")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per configuration")
    parser.add_argument(
        "--only-durable", action="store_true", help="only the durable inference log comparison"
    )
    parser.add_argument(
        "--only-overhead", action="store_true", help="only p50 overhead, tails and canary+shadow cost"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: bash scripts/ensure_apt.sh (it is in scripts/apt-packages.txt)")
    os.environ.update(ONE_THREAD)
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-serving-"))
    started = time.time()
    with MlflowServer(root=work / "mlflow") as mlflow_server:
        import mlflow

        from tests.support.models import register_flight_model

        log("registering two real flight models (seed 0 and 1)")
        v_old = register_flight_model(mlflow_server.url, MODEL, alias="champion", seed=0)
        v_new = register_flight_model(mlflow_server.url, MODEL, alias="challenger", seed=1)
        uris = {"v_old": f"models:/{MODEL}/{v_old.version}", "v_new": f"models:/{MODEL}/{v_new.version}"}
        mlflow.set_tracking_uri(mlflow_server.url)
        rows = real_rows(256)
        script = lua_script(rows, work)
        if args.only_overhead:
            part = overhead(work, mlflow_server.url, uris, rows, script, args)
            shown = json.dumps({k: v for k, v in part.items() if k != "runs"}, indent=2)
            return write_part("overhead", part, args, started, shown)
        if args.only_durable:
            durable = durable_cost(
                work, mlflow_server.url, uris["v_old"], rows, script, args.seconds, args.repeats
            )
            shown = "\n".join(["| measurement | value |", "|---|---|", *durable_table(durable)])
            return write_part("durable_log", durable, args, started, shown)
        log("in-process floor")
        results: dict[str, Any] = {"floor": floor(uris["v_old"], rows)}
        log(json.dumps(results["floor"]))

        gateway = GatewayServer(
            root=work / "gateway",
            tracking_uri=mlflow_server.url,
            deployments={"bench": uris["v_old"]},
            extra_args=["--threads", "1"],
        )
        with gateway, MlflowScoringServer(work, mlflow_server.url, uris["v_old"]) as scoring:
            targets = {"mlflow": f"{scoring.url}/invocations", "gateway": f"{gateway.url}/invocations"}
            for url in targets.values():  # warm both
                wrk(url, script, 4, 2)
            runs: dict[str, list[dict[str, float]]] = {}
            for repeat in range(args.repeats):
                for clients in (1, 32):
                    for name, url in targets.items():
                        run = wrk(url, script, clients, args.seconds)
                        runs.setdefault(f"{name}_c{clients}", []).append(run)
                        log(f"repeat {repeat} {name} c={clients}: {run}")
            results["servers"] = {key: median_runs(value) for key, value in runs.items()}

            admin = gateway.client()
            admin.deploy_slot("mix", uris["v_old"])
            mix_url = f"{gateway.url}/deployments/mix/invocations"
            mixed_runs: dict[str, list[dict[str, float]]] = {"stable_only": [], "canary10_shadow10": []}
            admin.deploy_slot("mix", uris["v_new"], slot="canary")
            admin.deploy_slot("mix", uris["v_new"], slot="shadow")
            for _ in range(args.repeats):
                admin.set_weights("mix", canary=0, shadow=0.0)
                mixed_runs["stable_only"].append(wrk(mix_url, script, 32, args.seconds))
                admin.set_weights("mix", canary=10, shadow=0.1)
                mixed_runs["canary10_shadow10"].append(wrk(mix_url, script, 32, args.seconds))
                log(f"mix: {mixed_runs['stable_only'][-1]} vs {mixed_runs['canary10_shadow10'][-1]}")
            results["traffic_split"] = {key: median_runs(value) for key, value in mixed_runs.items()}
            results["traffic_split"]["shadow"] = admin.deployment("mix")["shadow"]
            admin.close()
        with gateway:  # a fresh gateway for the rollback measurements
            results["rollback"] = rollbacks(gateway, rows, uris, mlflow_server.url)
        results["durable_log"] = durable_cost(
            work, mlflow_server.url, uris["v_old"], rows, script, args.seconds, args.repeats
        )

    servers = results["servers"]
    split = results["traffic_split"]
    results["ratios"] = {
        "gateway_vs_mlflow_rps_c32": round(servers["gateway_c32"]["rps"] / servers["mlflow_c32"]["rps"], 2),
        "gateway_vs_mlflow_p99_c32": round(
            servers["gateway_c32"]["p99_ms"] / servers["mlflow_c32"]["p99_ms"], 2
        ),
        "gateway_vs_mlflow_rps_c1": round(servers["gateway_c1"]["rps"] / servers["mlflow_c1"]["rps"], 2),
        "gateway_p50_overhead_ms_c1": round(
            servers["gateway_c1"]["p50_ms"] - results["floor"]["pyfunc_predict_1_rows_ms"], 3
        ),
        "canary_shadow_throughput_cost": round(
            1 - split["canary10_shadow10"]["rps"] / split["stable_only"]["rps"], 3
        ),
    }
    results["environment"] = environment(args, started)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    log(f"wrote {RESULTS}")
    print(table(results))
    return 0


def environment(args: argparse.Namespace, started: float) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "machine": platform.machine(),
        "seconds_per_run": args.seconds,
        "repeats": args.repeats,
        "wall_seconds": round(time.time() - started, 1),
    }


def write_part(key: str, part: dict[str, Any], args: argparse.Namespace, started: float, shown: str) -> int:
    """Update one part of the results, keeping the last full run's other figures."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[key] = part
    results[f"{key}_environment"] = environment(args, started)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    log(f"wrote {RESULTS}")
    print(shown)
    return 0


def table(results: dict[str, Any]) -> str:
    s, f, r, ratios = results["servers"], results["floor"], results["rollback"], results["ratios"]
    lines = [
        "| measurement | value |",
        "|---|---|",
        f"| in-process `pyfunc.predict`, 1 row / 32 / 256 rows (median) | {f['pyfunc_predict_1_rows_ms']} / "
        f"{f['pyfunc_predict_32_rows_ms']} / {f['pyfunc_predict_256_rows_ms']} ms |",
        f"| in-process model implementation (gateway fast path), 1 / 32 / 256 rows | "
        f"{f['impl_predict_1_rows_ms']} / {f['impl_predict_32_rows_ms']} / "
        f"{f['impl_predict_256_rows_ms']} ms |",
    ]
    for clients in (1, 32):
        for name in ("mlflow", "gateway"):
            m = s[f"{name}_c{clients}"]
            label = "`mlflow models serve`" if name == "mlflow" else "Conveyor gateway"
            lines.append(
                f"| {label}, {clients} client(s): throughput, p50, p99 | {m['rps']:.0f} req/s, "
                f"{m['p50_ms']:.2f} ms, {m['p99_ms']:.2f} ms ({m['failed']} failed) |"
            )
    split = results["traffic_split"]
    lines += [
        f"| gateway / MLflow throughput at 32 clients (target >= 2) | "
        f"{ratios['gateway_vs_mlflow_rps_c32']}x |",
        f"| gateway / MLflow p99 at 32 clients (target <= 1) | {ratios['gateway_vs_mlflow_p99_c32']} |",
        f"| gateway p50 at 1 client minus in-process floor (target <= 1 ms) | "
        f"{ratios['gateway_p50_overhead_ms_c1']} ms |",
        f"| stable only vs canary 10 % + shadow 10 %, 32 clients | {split['stable_only']['rps']:.0f} vs "
        f"{split['canary10_shadow10']['rps']:.0f} req/s: cost {ratios['canary_shadow_throughput_cost']:.1%} "
        "(target <= 15 %) |",
    ]
    for key, label in (
        ("blue_green_switch", "blue-green switch"),
        ("blue_green_rollback", "blue-green rollback"),
        ("canary_rollback", "canary rollback (50 %)"),
        ("gateway_reload", "gateway reload (alias moved)"),
    ):
        v = r[key]
        lines.append(
            f"| {label} under load: time to 100 % on the target version, failed requests | "
            f"{v['seconds_to_all_on_target'] * 1e3:.0f} ms, {v['failed']} failed of {v['requests']} |"
        )
    return "\n".join(lines + durable_table(results["durable_log"]))


if __name__ == "__main__":
    sys.exit(main())
