"""Scale-out benchmark: gateway replicas on PostgreSQL behind nginx, one run, real processes.

    .venv/bin/python benchmarks/scale_out.py [--seconds 8] [--repeats 3] [--quick]

Measures (results in benchmarks/results/scale_out.json, table printed as Markdown):
- throughput, p50/p99 and CPU seconds per 1000 requests of one replica hit directly vs 1, 2 and 3
  replicas behind nginx (``least_conn``, the config of ``conveyor.local.nginx``), at 32 and 1
  clients, driven by ``wrk -t1`` on loopback (Lua script rotating real rows), runs of the four
  variants interleaved; medians over repeats. The replicas are those of one 3-replica
  ``GatewayCluster`` (``conveyor serve --no-controller`` on a PostgreSQL store + ``conveyor
  controller``); the 1- and 2-replica variants are nginx instances (same config, fewer upstreams)
  in front of the first replica(s), so every variant runs on the very same processes. CPU is the
  user+system time (``psutil``) of the processes a variant uses: its replicas, its nginx master and
  worker, and the controller (none of the last two for the direct variant);
- convergence after a weight change: with 3 replicas, a canary weight set through nginx, 20 times;
  seconds until every replica's own ``/admin/deployments/<name>`` shows the new generation (each
  replica polled every 10 ms from its own thread);
- controller failover: SIGKILL of the leading ``conveyor controller`` (its process group) with a
  standby running; seconds until the standby holds the lease (``conveyor_leases`` read through
  SQLAlchemy every 10 ms); 3 times, the role moving each time (a fresh standby per round);
- the one-process default (``conveyor serve``, embedded SQLite store and controller) vs the gateway
  before the state store existed (commit 395d78e, run from a git worktree), same model, runs
  interleaved, at least 5 repeats at 1 and 32 clients: throughput and p50 ratios new/old.
Every server runs with one intra-op thread (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from benchmarks.serving import ONE_THREAD, log, lua_script, median_runs, real_rows, wrk  # noqa: E402
from conveyor.local.cluster import ControllerProcess, GatewayCluster  # noqa: E402
from conveyor.local.gateway import GatewayServer  # noqa: E402
from conveyor.local.mlflow_server import MlflowServer  # noqa: E402
from conveyor.local.nginx import LoadBalancer  # noqa: E402
from conveyor.local.postgres import LocalPostgres  # noqa: E402
from conveyor.local.process import ensure_port_free, log_tail, start_group, wait_http  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "scale_out.json"
MODEL = "bench_flights"
DEPLOYMENT = "bench"
BEFORE_COMMIT = "395d78e"  # the gateway before the state store
BEFORE_TREE = Path("/tmp/conveyor-before")
SCORING = f"/deployments/{DEPLOYMENT}/invocations"


# ---- CPU accounting ------------------------------------------------------------------------------
def _tree(pids: list[int]) -> list[psutil.Process]:
    """The processes ``pids`` and all their descendants (nginx's worker, any forked helper)."""
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                found[proc.pid] = proc
    return list(found.values())


def cpu_snapshot(roles: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    """role -> pid -> user+system CPU seconds so far."""
    out: dict[str, dict[int, float]] = {}
    for role, pids in roles.items():
        out[role] = {}
        for proc in _tree(pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                out[role][proc.pid] = times.user + times.system
    return out


def cpu_delta(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    return {
        role: sum(seconds - before.get(role, {}).get(pid, 0.0) for pid, seconds in pids.items())
        for role, pids in after.items()
    }


def _batches(servers: list[GatewayServer]) -> int:
    """Batches the stable slot of ``DEPLOYMENT`` has predicted so far, over ``servers``."""
    total = 0
    for server in servers:
        with server.client(timeout=10.0) as client:
            total += int(client.deployment(DEPLOYMENT)["slots"]["stable"]["batches"])
    return total


@dataclass
class Target:
    """One thing wrk drives, the processes whose CPU it is charged with (by role), its gateways."""

    url: str
    roles: dict[str, list[int]] = field(default_factory=dict)
    servers: list[GatewayServer] = field(default_factory=list)

    def run(self, script: Path, connections: int, seconds: float) -> dict[str, float]:
        batches = _batches(self.servers)
        before = cpu_snapshot(self.roles)
        result = wrk(self.url, script, connections, seconds)
        spent = cpu_delta(before, cpu_snapshot(self.roles))
        batches = _batches(self.servers) - batches
        per_k = 1000 / max(result["requests"], 1)
        result["cpu_s_per_1k"] = sum(spent.values()) * per_k
        for role, seconds_spent in spent.items():
            result[f"cpu_s_per_1k_{role}"] = seconds_spent * per_k
        # requests in flight when wrk stops are batched but not counted: a hair low; it shows batching
        result["rows_per_batch"] = result["requests"] / max(batches, 1)
        return result


def summarize(runs: list[dict[str, float]]) -> dict[str, Any]:
    """``median_runs`` plus the median CPU seconds per 1000 requests (total and per role)."""
    summary = median_runs(runs)
    for key in sorted({k for r in runs for k in r if k.startswith("cpu_s_per_1k") or k == "rows_per_batch"}):
        summary[key] = round(statistics.median(r[key] for r in runs), 4)
    summary["requests"] = sum(int(r["requests"]) for r in runs)
    for full, run in zip(runs, summary["runs"], strict=True):
        run["cpu_s_per_1k"] = round(full["cpu_s_per_1k"], 4)
        run["rows_per_batch"] = round(full["rows_per_batch"], 2)
    return summary


def interleaved(
    targets: dict[str, Target], script: Path, seconds: float, repeats: int
) -> dict[str, list[dict[str, float]]]:
    """Every target at 32 then 1 client(s) per repeat, the order rotated so none always goes first."""
    names = list(targets)
    runs: dict[str, list[dict[str, float]]] = {}
    for repeat in range(repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for clients in (32, 1):
            for name in order:
                run = targets[name].run(script, clients, seconds)
                runs.setdefault(f"{name}_c{clients}", []).append(run)
                log(
                    f"repeat {repeat} {name} c={clients}: {run['rps']:.0f} req/s, "
                    f"p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, "
                    f"{run['cpu_s_per_1k']:.3f} CPU s/1k, {run['failed']:.0f} failed"
                )
    return runs


def log_problems(paths: list[Path]) -> dict[str, Any]:
    """Error lines in service logs (nginx ``[error]``/``[crit]``, Python ``ERROR``/tracebacks)."""
    marks = ("[error]", "[crit]", "[alert]", "[emerg]", " ERROR ", "Traceback")
    out: dict[str, Any] = {}
    for path in paths:
        if not path.exists():
            continue
        lines = [
            line for line in path.read_text(errors="replace").splitlines() if any(m in line for m in marks)
        ]
        if lines:
            out[str(path.relative_to(path.parents[1]))] = {"count": len(lines), "first": lines[:5]}
    return out


# ---- 1. throughput and CPU: direct vs 1, 2, 3 replicas behind nginx ----------------------------
def wait_everywhere(cluster: GatewayCluster, name: str, slot: str = "stable", timeout: float = 120.0) -> None:
    """Until every replica serves ``slot`` of ``name`` (each asked on its own port, not via nginx)."""
    deadline = time.monotonic() + timeout
    for server in cluster.servers:
        with server.client(timeout=30.0) as client:
            while not (client.exists(name) and client.deployment(name)["slots"].get(slot, {}).get("loaded")):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{server.replica_id} did not load {slot} of {name}\n{log_tail(server.log_path)}"
                    )
                time.sleep(0.1)


def idle_cpu(
    servers: list[GatewayServer], balancers: dict[int, LoadBalancer], controller: int, seconds: float
) -> dict[str, float]:
    """CPU cores each kind of process uses with no traffic: store polls, heartbeats, lease renewals."""
    roles = {
        **{f"replica_{i}": [s.proc.pid] for i, s in enumerate(servers)},  # type: ignore[union-attr]
        "nginx_3": [balancers[3].proc.pid],  # type: ignore[union-attr]
        "controller": [controller],
    }
    time.sleep(1.0)  # after the deploy's loads
    before, start = cpu_snapshot(roles), time.perf_counter()
    time.sleep(max(2.0, seconds / 2))
    spent, elapsed = cpu_delta(before, cpu_snapshot(roles)), time.perf_counter() - start
    return {role: round(cpu / elapsed, 4) for role, cpu in spent.items()}


def scaling(
    cluster: GatewayCluster,
    stack: contextlib.ExitStack,
    work: Path,
    script: Path,
    seconds: float,
    repeats: int,
) -> dict[str, Any]:
    assert cluster.controller is not None and cluster.controller.proc is not None
    assert cluster.balancer is not None and cluster.balancer.proc is not None
    servers = cluster.servers
    upstreams = [f"{s.host}:{s.port}" for s in servers]
    balancers = {3: cluster.balancer}
    for count in (1, 2):
        balancer = LoadBalancer(work / f"nginx-{count}", upstreams[:count]).start()
        stack.callback(balancer.stop)
        balancers[count] = balancer
    controller = cluster.controller.proc.pid
    targets = {
        "direct": Target(f"{servers[0].url}{SCORING}", {"replicas": [servers[0].proc.pid]}, servers[:1])
    }
    for count in (1, 2, 3):
        targets[f"nginx_{count}"] = Target(
            f"{balancers[count].url}{SCORING}",
            {
                "replicas": [s.proc.pid for s in servers[:count]],
                "nginx": [balancers[count].proc.pid],
                "controller": [controller],
            },
            servers[:count],
        )
    idle = idle_cpu(servers, balancers, controller, seconds)
    log(f"idle, CPU cores used: {idle}")
    for name, target in targets.items():  # warm each path (and each replica behind it)
        target.run(script, 4, 2)
        log(f"warmed {name}")
    runs = interleaved(targets, script, seconds, repeats)
    summary: dict[str, Any] = {key: summarize(value) for key, value in runs.items()}
    summary["idle_cpu_cores"] = idle
    for clients in (32, 1):
        base = summary[f"direct_c{clients}"]
        for name in targets:
            m = summary[f"{name}_c{clients}"]
            m["rps_vs_direct"] = round(m["rps"] / base["rps"], 3)
            m["p50_vs_direct"] = round(m["p50_ms"] / base["p50_ms"], 3)
    summary["log_problems"] = log_problems([balancers[count].log_path for count in (1, 2, 3)])
    for count in (1, 2):
        balancers[count].stop()
    return summary


# ---- 2. convergence after a weight change --------------------------------------------------------
class GenerationWatch:
    """One thread per replica polling its own ``/admin/deployments/<name>`` every ``every_s``.

    Records, per replica, when each generation was first seen (``time.perf_counter``).
    """

    def __init__(self, servers: list[GatewayServer], name: str, every_s: float = 0.01) -> None:
        self.servers, self.name, self.every_s = servers, name, every_s
        self.first_seen: list[dict[int, float]] = [{} for _ in servers]
        self.latest = [0] * len(servers)
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._poll, args=(i,), daemon=True) for i in range(len(servers))
        ]

    def _poll(self, index: int) -> None:
        with self.servers[index].client(timeout=10.0) as client:
            while not self.stop.is_set():
                try:
                    # the generation this replica serves, not the store's (which answers at once)
                    generation = int(client.deployment(self.name)["replica"]["generation"] or 0)
                except Exception as exc:  # recorded and reported; the watch goes on
                    self.errors.append(f"{self.servers[index].replica_id}: {exc}")
                    generation = 0
                now = time.perf_counter()
                if generation > self.latest[index]:
                    self.latest[index] = generation
                    self.first_seen[index][generation] = now
                self.stop.wait(self.every_s)

    def seen_at(self, index: int, generation: int) -> float | None:
        times = [t for g, t in self.first_seen[index].items() if g >= generation]
        return min(times) if times else None

    def __enter__(self) -> GenerationWatch:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def convergence(cluster: GatewayCluster, uris: list[str], trials: int) -> dict[str, Any]:
    name = "converge"
    rng = random.Random(0)
    with cluster.client() as admin:
        admin.deploy_slot(name, uris[0])
        wait_everywhere(cluster, name)
        admin.deploy_slot(name, uris[1], slot="canary")
        wait_everywhere(cluster, name, slot="canary")
        log("canary loaded on every replica")
        seconds: list[float] = []
        admin_call: list[float] = []
        per_replica: list[list[float]] = []
        with GenerationWatch(cluster.servers, name) as watch:
            time.sleep(0.3)
            for trial in range(trials):
                weight = 5 + (trial * 35) % 95
                start = time.perf_counter()
                generation = int(admin.set_weights(name, canary=weight)["generation"])
                answered = time.perf_counter()
                deadline = answered + 10.0
                while True:
                    seen = [watch.seen_at(i, generation) for i in range(len(cluster.servers))]
                    if all(t is not None for t in seen):
                        break
                    if time.perf_counter() > deadline:
                        raise TimeoutError(f"generation {generation} of {name} not on every replica: {seen}")
                    time.sleep(0.005)
                replica_s = [t - start for t in seen]  # type: ignore[operator]
                seconds.append(max(replica_s))
                admin_call.append(answered - start)
                per_replica.append([round(s, 4) for s in replica_s])
                log(
                    f"weights canary={weight} (generation {generation}): on every replica after "
                    f"{seconds[-1] * 1e3:.0f} ms (admin call {admin_call[-1] * 1e3:.0f} ms)"
                )
                time.sleep(rng.uniform(0.05, 0.3))  # so writes fall at random points of the replicas' poll
        errors = list(watch.errors)
    ordered = sorted(seconds)
    return {
        "trials": trials,
        "median_s": round(statistics.median(seconds), 4),
        "p90_s": round(ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))], 4),
        "max_s": round(max(seconds), 4),
        "admin_call_median_s": round(statistics.median(admin_call), 4),
        "seconds": [round(s, 4) for s in seconds],
        "per_replica_s": per_replica,
        "poll_errors": errors[:20],
        "poll_error_count": len(errors),
    }


# ---- 3. controller failover ---------------------------------------------------------------------
def _lease(engine: sa.Engine) -> tuple[str | None, float]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT holder, expires_at FROM conveyor_leases WHERE name = 'controller'")
        ).first()
    return (row[0], float(row[1])) if row else (None, 0.0)


def _backends(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            ).scalar()
        )


def failover(cluster: GatewayCluster, stack: contextlib.ExitStack, work: Path, rounds: int) -> dict[str, Any]:
    engine = sa.create_engine(cluster.store_url, poolclass=sa.pool.NullPool)
    stack.callback(engine.dispose)
    leader = cluster.controller
    assert leader is not None and leader.proc is not None
    holder, _ = _lease(engine)
    if holder != leader.holder:
        raise RuntimeError(
            f"the lease is held by {holder!r}, not by the cluster's controller {leader.holder!r}"
        )
    results: list[dict[str, Any]] = []
    for round_ in range(rounds):
        connected = _backends(engine)
        standby = ControllerProcess(
            work / "controllers", cluster.store_url, cluster.tracking_uri, holder=f"standby-{round_ + 1}"
        )
        standby.root.mkdir(parents=True, exist_ok=True)
        standby.start()
        stack.callback(standby.stop)
        # Standing by logs nothing: it is up once it has a connection of its own to the store.
        deadline = time.monotonic() + 60
        while _backends(engine) <= connected:
            standby.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{standby.holder} never connected to the store\n{log_tail(standby.log_path)}"
                )
            time.sleep(0.05)
        time.sleep(0.5)  # a few of its 0.2 s ticks: it stands by
        holder, expires_at = _lease(engine)
        if holder != leader.holder:
            raise RuntimeError(f"before the kill the lease is held by {holder!r}, not {leader.holder!r}")
        killed = time.time()
        os.killpg(leader.proc.pid, signal.SIGKILL)
        leader.proc.wait(timeout=10)
        leader.proc = None
        while True:
            holder, _ = _lease(engine)
            if holder == standby.holder:
                took = time.time()
                break
            if time.time() - killed > 30:
                raise TimeoutError(
                    f"{standby.holder} did not take the lease within 30 s\n{log_tail(standby.log_path)}"
                )
            time.sleep(0.01)
        results.append(
            {
                "killed": leader.holder,
                "took_over": standby.holder,
                "seconds": round(took - killed, 4),
                "lease_left_at_kill_s": round(expires_at - killed, 4),
                "after_expiry_s": round(took - expires_at, 4),
            }
        )
        log(f"failover {round_}: {results[-1]}")
        leader = standby
        cluster.controller = standby  # the cluster stops whoever leads now
    seconds = [r["seconds"] for r in results]
    return {
        "rounds": results,
        "lease_s": leader.lease_s,
        "median_s": round(statistics.median(seconds), 4),
        "max_s": round(max(seconds), 4),
    }


# ---- 4. the one-process default vs the gateway before the state store ---------------------------
class GatewayBefore(GatewayServer):
    """``conveyor serve`` of commit 395d78e: the flags ``GatewayServer`` builds, minus ``--store``."""

    def start(self, timeout: float = 120.0) -> GatewayBefore:
        self.root.mkdir(parents=True, exist_ok=True)
        ensure_port_free(self.host, self.port)
        cmd = [
            sys.executable, "-m", "conveyor.cli", "serve", "--host", self.host, "--port", str(self.port),
            "--tracking-uri", self.tracking_uri, "--log-url", self.inference_log_url,
            *[f"--deploy={name}={uri}" for name, uri in self.deployments.items()],
            *self.extra_args,
        ]  # fmt: skip
        env = {
            "CONVEYOR_GATEWAY_TOKEN": self.token,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "PYTHONPATH": str(BEFORE_TREE / "provider"),
        }
        # cwd inside the worktree's root, so nothing of /work/main's checkout shadows the old code
        self.proc = start_group(cmd, self.log_path, env=env, cwd=BEFORE_TREE)
        try:
            wait_http(f"{self.url}/health", timeout=timeout, proc=self.proc)
            self._check_loaded()
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"the old gateway did not start: {exc}\n{log_tail(self.log_path)}") from exc
        return self


def before_worktree(stack: contextlib.ExitStack) -> None:
    git = ["git", "-C", str(ROOT)]
    if not (BEFORE_TREE / "provider" / "conveyor" / "cli.py").exists():
        subprocess.run([*git, "worktree", "prune"], check=True, capture_output=True)
        subprocess.run(
            [*git, "worktree", "add", "--detach", str(BEFORE_TREE), BEFORE_COMMIT],
            check=True,
            capture_output=True,
        )
    head = subprocess.run(
        ["git", "-C", str(BEFORE_TREE), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not BEFORE_COMMIT.startswith(head[: len(BEFORE_COMMIT)]):
        raise RuntimeError(f"{BEFORE_TREE} is at {head}, not {BEFORE_COMMIT}: remove it and run again")
    stack.callback(
        subprocess.run,
        [*git, "worktree", "remove", "--force", str(BEFORE_TREE)],
        check=False,
        capture_output=True,
    )


def before_after(
    stack: contextlib.ExitStack,
    work: Path,
    tracking_uri: str,
    model_uri: str,
    script: Path,
    seconds: float,
    repeats: int,
) -> dict[str, Any]:
    before_worktree(stack)
    common = {
        "tracking_uri": tracking_uri,
        "deployments": {DEPLOYMENT: model_uri},
        "extra_args": ["--threads", "1"],
    }
    gateways: dict[str, GatewayServer] = {
        "before": GatewayBefore(root=work / "gateway-before", **common),
        "now": GatewayServer(root=work / "gateway-now", **common),
    }
    for gateway in gateways.values():
        stack.callback(gateway.stop)
        gateway.start()
    # the code the old gateway runs: the worktree's, not this checkout's
    where = subprocess.run(
        [sys.executable, "-c", "import conveyor.serving.app as m; print(m.__file__)"],
        env={**os.environ, "PYTHONPATH": str(BEFORE_TREE / "provider")},
        cwd=BEFORE_TREE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not where.startswith(str(BEFORE_TREE)):
        raise RuntimeError(f"the old gateway would import {where}, not the code of {BEFORE_COMMIT}")
    targets = {
        name: Target(f"{g.url}{SCORING}", {"gateway": [g.proc.pid]}, [g]) for name, g in gateways.items()
    }
    for target in targets.values():
        target.run(script, 4, 2)
    runs = interleaved(targets, script, seconds, repeats)
    for gateway in gateways.values():
        gateway.stop()
    problems = log_problems([g.log_path for g in gateways.values()])
    summary: dict[str, Any] = {key: summarize(value) for key, value in runs.items()}
    for clients in (32, 1):
        new, old = summary[f"now_c{clients}"], summary[f"before_c{clients}"]
        summary[f"rps_ratio_c{clients}"] = round(new["rps"] / old["rps"], 3)
        summary[f"p50_ratio_c{clients}"] = round(new["p50_ms"] / old["p50_ms"], 3)
        summary[f"cpu_ratio_c{clients}"] = round(new["cpu_s_per_1k"] / old["cpu_s_per_1k"], 3)
    summary["repeats"] = repeats
    summary["before_commit"] = BEFORE_COMMIT
    summary["before_code"] = where
    summary["log_problems"] = problems
    return summary


# ---- report -------------------------------------------------------------------------------------
def _version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return (
        (done.stdout + done.stderr).strip().splitlines()[0]
        if (done.stdout + done.stderr).strip()
        else "unknown"
    )


def environment(args: argparse.Namespace, started: float, postgres_version: str) -> dict[str, Any]:
    git = ["git", "-C", str(ROOT)]
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    packages = {}
    for package in ("mlflow", "torch", "uvicorn", "sqlalchemy", "psycopg2-binary", "psutil", "conveyor-ml"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            packages[package] = importlib.metadata.version(package)
    return {
        "git_sha": subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "git_dirty": bool(dirty),
        "python": platform.python_version(),
        "packages": packages,
        "nginx": _version([shutil.which("nginx", path="/usr/sbin:/usr/bin") or "nginx", "-v"]),
        "wrk": _version(["wrk", "-v"]),
        "postgresql": postgres_version,
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_end": os.getloadavg(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "seconds_per_run": args.seconds,
        "repeats": args.repeats,
        "quick": args.quick,
        "wall_seconds": round(time.time() - started, 1),
    }


def notes(results: dict[str, Any]) -> list[str]:
    cpus = results["environment"]["cpus_usable"]
    ceiling = (
        f"{cpus} CPU core(s), shared by wrk, nginx, the replicas and the controller: once the replicas "
        "behind nginx together use every core, another replica adds no throughput; the cores are the "
        "ceiling, not the gateway."
    )
    if cpus <= 3:
        ceiling += (
            " Here 1-2 replicas (with nginx and wrk) already fill the machine, so the 2- and 3-replica "
            "throughputs measure the machine; CPU seconds per 1000 requests is the figure that carries "
            "over to more cores."
        )
    return [
        ceiling,
        "The 1- and 2-replica variants are nginx instances (the config of conveyor.local.nginx) in "
        "front of the first replica(s) of the 3-replica cluster; idle replicas keep polling the store "
        "(every 0.2 s) in every variant. CPU is counted over the processes a variant uses: its "
        "replicas, nginx master + worker and the controller (the direct variant: the replica only); "
        "wrk's own CPU is not counted.",
        "Convergence: from just before the weights POST through nginx to the first poll (10 ms apart) "
        "of each replica's own admin API showing the new generation; the slowest replica counts.",
        "Failover: from the SIGKILL of the leader's process group to the standby's name in "
        f"conveyor_leases (lease {results['failover']['lease_s']} s, controller tick 0.2 s).",
    ]


LABELS = {
    "direct": "one replica direct",
    "nginx_1": "1 replica + nginx",
    "nginx_2": "2 replicas + nginx",
    "nginx_3": "3 replicas + nginx",
}


def table(results: dict[str, Any]) -> str:
    s, c, f, b = results["scaling"], results["convergence"], results["failover"], results["before_after"]
    lines = ["| measurement | value |", "|---|---|"]
    for name, label in LABELS.items():
        m = s[f"{name}_c32"]
        lines.append(
            f"| {label}, 32 clients: throughput (x direct), p50 / p99, CPU s per 1000 req | "
            f"{m['rps']:.0f} req/s ({m['rps_vs_direct']:.2f}x), {m['p50_ms']:.2f} / {m['p99_ms']:.2f} ms, "
            f"{m['cpu_s_per_1k']:.3f} s, {m['rows_per_batch']:.1f} rows/batch ({m['failed']} failed) |"
        )
    for name, label in LABELS.items():
        m = s[f"{name}_c1"]
        lines.append(
            f"| {label}, 1 client: p50 / p99, throughput, CPU s per 1000 req | {m['p50_ms']:.2f} / "
            f"{m['p99_ms']:.2f} ms, {m['rps']:.0f} req/s, {m['cpu_s_per_1k']:.3f} s ({m['failed']} failed) |"
        )
    idle = s["idle_cpu_cores"]
    replicas = [v for k, v in idle.items() if k.startswith("replica_")]
    lines.append(
        f"| no traffic: CPU cores used per replica (max) / controller / nginx | {max(replicas):.3f} / "
        f"{idle['controller']:.3f} / {idle['nginx_3']:.3f} |"
    )
    lines += [
        f"| weight change via nginx until every replica shows it, median / p90 / max ({c['trials']} times) "
        f"| {c['median_s'] * 1e3:.0f} / {c['p90_s'] * 1e3:.0f} / {c['max_s'] * 1e3:.0f} ms "
        f"(admin call {c['admin_call_median_s'] * 1e3:.0f} ms) |",
        f"| controller SIGKILL until the standby holds the lease, median / max ({len(f['rounds'])} times, "
        f"lease {f['lease_s']} s) | {f['median_s']:.2f} / {f['max_s']:.2f} s |",
    ]
    for clients in (32, 1):
        new, old = b[f"now_c{clients}"], b[f"before_c{clients}"]
        lines.append(
            f"| one process now (SQLite store) vs before the store ({BEFORE_COMMIT}), {clients} client(s): "
            f"throughput, p50 | {new['rps']:.0f} vs {old['rps']:.0f} req/s "
            f"(ratio {b[f'rps_ratio_c{clients}']:.3f}, target >= 0.95), {new['p50_ms']:.2f} vs "
            f"{old['p50_ms']:.2f} ms (ratio {b[f'p50_ratio_c{clients}']:.3f}) |"
        )
    return "\n".join([*lines, "", *(f"- {note}" for note in results["notes"])])


def measure(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    """Every section, each service stopped on the way out (also on an error or Ctrl-C)."""
    with contextlib.ExitStack() as stack:
        mlflow_server = stack.enter_context(MlflowServer(root=work / "mlflow"))
        import mlflow

        from tests.support.models import register_flight_model

        log("registering two real flight models (seed 0 and 1)")
        versions = [
            register_flight_model(mlflow_server.url, MODEL, alias=alias, seed=seed)
            for seed, alias in ((0, "champion"), (1, "challenger"))
        ]
        uris = [f"models:/{MODEL}/{v.version}" for v in versions]
        mlflow.set_tracking_uri(mlflow_server.url)
        script = lua_script(real_rows(256), work)

        log("starting PostgreSQL")
        postgres = LocalPostgres(work / "pg" / "data").start()
        stack.callback(postgres.stop)
        postgres.create_database("gateway_store")
        store_url = postgres.sqlalchemy_url("gateway_store")
        engine = sa.create_engine(store_url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            results["postgres_version"] = str(conn.execute(sa.text("SHOW server_version")).scalar())
        engine.dispose()

        log("starting 3 replicas, a controller and nginx")
        cluster = GatewayCluster(
            root=work / "cluster", tracking_uri=mlflow_server.url, store_url=store_url, replicas=3
        )
        stack.callback(cluster.stop)
        cluster.start()
        with cluster.client() as admin:
            admin.deploy_slot(DEPLOYMENT, uris[0])
        wait_everywhere(cluster, DEPLOYMENT)
        log(f"{DEPLOYMENT} is served by every replica")

        log("1. throughput and CPU: one replica direct vs 1, 2, 3 replicas behind nginx")
        results["scaling"] = scaling(cluster, stack, work, script, args.seconds, args.repeats)
        log("2. convergence after a weight change")
        results["convergence"] = convergence(cluster, uris, 10 if args.quick else 20)
        summary = {k: v for k, v in results["convergence"].items() if k.endswith("_s")}
        log(f"convergence: {summary}")
        log("3. controller failover")
        results["failover"] = failover(cluster, stack, work, 2 if args.quick else 3)
        cluster.stop()
        results["cluster_log_problems"] = log_problems(
            [*(server.log_path for server in cluster.servers), *(work / "cluster").glob("*.log"),
             *(work / "controllers").glob("*.log"), cluster.balancer.log_path]  # type: ignore[union-attr]
        )  # fmt: skip
        log(f"error lines in the cluster's logs: {results['cluster_log_problems'] or 'none'}")

        log("4. the one-process default vs the gateway before the state store")
        results["before_after"] = before_after(
            stack,
            work,
            mlflow_server.url,
            uris[0],
            script,
            args.seconds,
            2 if args.quick else max(5, args.repeats),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per configuration")
    parser.add_argument(
        "--quick", action="store_true", help="2 s runs, 1-2 repeats: a smoke test, not figures"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats = 2.0, 1
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: bash scripts/ensure_apt.sh (it is in scripts/apt-packages.txt)")
    os.environ.update(ONE_THREAD)
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-scale-out-"))
    os.chmod(work, 0o755)  # PostgreSQL runs as its own user when this runs as root
    started = time.time()
    results: dict[str, Any] = {}
    try:
        measure(args, work, results)
    except BaseException:
        log(f"stopped every service; their logs are kept under {work}")
        raise
    results["environment"] = environment(args, started, results.pop("postgres_version"))
    results["notes"] = notes(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    log(f"wrote {RESULTS} after {results['environment']['wall_seconds']:.0f} s")
    shutil.rmtree(work, ignore_errors=True)  # kept, with every service's log, when a run fails
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
