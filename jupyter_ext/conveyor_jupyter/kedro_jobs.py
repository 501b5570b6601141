"""Kedro pipeline runs started from a notebook, outside the kernel.

``kedro run`` trains a torch model for minutes; inside the kernel it would block the notebook.
Each run is a child process (``python -m conveyor_jupyter.kedro_jobs``) that runs Kedro and
records its state in ``<jobs_root>/<id>/state.json``. The kernel and the Jupyter server share that
folder (the Jupyter runtime dir), so the side panel and the run renderer follow a run that a
kernel started, and the run survives a kernel restart. The server reads ``state.json`` while the
child rewrites it, so every write replaces the file atomically (``conveyor.core.atomic``). Two
runs that would write the same ``data_root`` are refused (``_data_lock``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from conveyor.core import atomic
from conveyor.local.process import log_tail, start_group
from conveyor_jupyter.views import RunView

_MLFLOW_RUN = re.compile(r"(https?://\S+?)/#/experiments/(\d+)/runs/([0-9a-f]{32})")
_PARAM = re.compile(r"^[A-Za-z_][\w.]*=.*$")


class KedroJobError(ValueError):
    """A Kedro run that cannot be started as asked."""


def jobs_root() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / "conveyor-kedro"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def kedro_params(pairs: list[str]) -> str:
    """``["a=1", "b.c=x"]`` → Kedro's ``--params a=1,b.c=x``; refuses what Kedro would misread."""
    for pair in pairs:
        if not _PARAM.match(pair):
            raise KedroJobError(f"param {pair!r} must look like name=value")
        if "," in pair:
            raise KedroJobError(f"param {pair!r} holds a comma, which Kedro's --params cannot carry")
    return ",".join(pairs)


@dataclass
class KedroJob:
    """One local Kedro run, known by the folder that holds its state and log."""

    job_id: str
    root: Path

    @property
    def folder(self) -> Path:
        return self.root / self.job_id

    @property
    def log_path(self) -> Path:
        return self.folder / "kedro.log"

    def state(self) -> dict[str, Any]:
        """The recorded state; a run whose runner died before recording its end reads as failed.

        The runner writes the final state before it exits, so "running" read *after* seeing the
        runner gone means it was killed (OOM, SIGKILL, a reboot) and will never say more.
        """
        path = self.folder / "state.json"
        if not path.exists():
            raise KedroJobError(f"no Kedro run {self.job_id!r} under {self.root}")
        state = json.loads(path.read_text())
        if state["state"] != "running" or _runner_alive(state):
            return state
        state = json.loads(path.read_text())
        if state["state"] != "running":
            return state  # it recorded its end between the two reads
        return {
            **state,
            "state": "failed",
            "message": f"the runner (pid {state['pid']}) ended without recording how kedro run finished; "
            f"see {self.log_path} and {self.folder / 'runner.log'}",
        }

    def view(self, mlflow_ui: str = "") -> RunView:
        state = self.state()
        links: dict[str, str] = {}
        match = (
            _MLFLOW_RUN.search(self.log_path.read_text(errors="replace")) if self.log_path.exists() else None
        )
        if match:
            base = mlflow_ui.rstrip("/") or match.group(1)
            links["MLflow"] = f"{base}/#/experiments/{match.group(2)}/runs/{match.group(3)}"
        return RunView(
            kind="kedro",
            run_id=self.job_id,
            pipeline=state["pipeline"],
            state=state["state"],
            start_date=state.get("start_date"),
            end_date=state.get("end_date"),
            conf={"params": state.get("params", "")},
            links=links,
            message=state.get("message", ""),
        )

    def log(self, lines: int = 200) -> str:
        return log_tail(self.log_path, lines)


def start(project: Path, pipeline: str, params: list[str], root: Path, env: dict[str, str]) -> KedroJob:
    """Launch ``kedro run`` for ``pipeline`` in ``project`` and return at once."""
    if not (project / "pyproject.toml").exists():
        raise KedroJobError(
            f"{project} is not a Kedro project (no pyproject.toml); set CONVEYOR_KEDRO_PROJECT"
        )
    spec = {
        "pipeline": pipeline,
        "params": kedro_params(params),
        "project": str(project),
        "state": "queued",
        "start_date": _now(),
    }
    root.mkdir(parents=True, exist_ok=True)
    with _data_lock(root, spec) as (held_by, _):
        if held_by is not None:
            raise KedroJobError(_busy(spec, held_by))
    job = KedroJob(f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", root)
    job.folder.mkdir(parents=True)
    atomic.write_text(job.folder / "state.json", json.dumps(spec))
    cmd = [sys.executable, "-m", "conveyor_jupyter.kedro_jobs", str(job.folder)]
    start_group(cmd, job.folder / "runner.log", env={"KEDRO_DISABLE_TELEMETRY": "1", **env}, cwd=project)
    return job


@contextmanager
def _data_lock(root: Path, spec: dict[str, Any], job_id: str = "") -> Iterator[tuple[str | None, int]]:
    """Hold the lock of the run's data folder: ``(None, fd)``, or ``(holder's job id, -1)``.

    The project's catalog writes its intermediate files to fixed paths under ``data_root``: two
    runs on the same folder overwrite each other's training sets. The lock is an ``flock``, so it
    ends with the processes that hold it (the runner and the ``kedro run`` it passes it to),
    killed ones included.
    """
    data_root = next(
        (p.partition("=")[2] for p in spec["params"].split(",") if p.startswith("data_root=")), ""
    )
    key = hashlib.sha256(f"{spec['project']}\0{data_root}".encode()).hexdigest()[:16]
    with open(root / f"data-{key}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            yield lock.read().strip() or "unknown", -1
            return
        if job_id:
            lock.truncate(0)
            lock.write(job_id)
            lock.flush()
        yield None, lock.fileno()


def _busy(spec: dict[str, Any], held_by: str) -> str:
    return (
        f"another Kedro run of {spec['project']} (job {held_by}) is using the same data folder, and two "
        "runs would overwrite each other's files: wait for it to end, or give this run its own folder "
        "with --params data_root=<folder>"
    )


def _runner_alive(state: dict[str, Any]) -> bool:
    """Whether the recorded runner still runs (a zombie does not; a reused pid is not it)."""
    try:
        proc = psutil.Process(state["pid"])
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - state["pid_started"]) < 1.0
    except (psutil.NoSuchProcess, KeyError):
        return False


def _run(folder: Path) -> int:
    """The child process: run Kedro, then record how it ended."""
    path = folder / "state.json"
    spec = json.loads(path.read_text())
    cmd = [sys.executable, "-m", "kedro", "run", "--pipeline", spec["pipeline"]]
    if spec["params"]:
        cmd += ["--params", spec["params"]]
    with _data_lock(folder.parent, spec, folder.name) as (held_by, fd):
        if held_by is not None:  # another job took the folder between start() and here
            failed = {**spec, "state": "failed", "end_date": _now(), "message": _busy(spec, held_by)}
            atomic.write_text(path, json.dumps(failed))
            return 1
        me = psutil.Process()
        running = {**spec, "state": "running", "pid": me.pid, "pid_started": me.create_time()}
        atomic.write_text(path, json.dumps(running))
        started = time.monotonic()
        with open(folder / "kedro.log", "ab") as log:
            code = subprocess.call(
                cmd, cwd=spec["project"], stdout=log, stderr=subprocess.STDOUT, pass_fds=(fd,)
            )
    final = {
        **spec,
        "state": "success" if code == 0 else "failed",
        "returncode": code,
        "end_date": _now(),
        "message": f"kedro run exited with {code} after {time.monotonic() - started:.0f}s",
    }
    atomic.write_text(path, json.dumps(final))
    return code


if __name__ == "__main__":
    sys.exit(_run(Path(sys.argv[1])))
