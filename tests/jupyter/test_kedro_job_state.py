"""Notebook-started Kedro runs: ``state.json`` is read while the runner rewrites it, and a killed
runner reads as failed instead of "running" forever.

The project folder holds a ``kedro/__main__.py`` that stands in for a long or failing
``kedro run`` (``python -m kedro`` finds the project folder first on ``sys.path``), so the
runner, its state file and the reader are real while the run takes as long as the test needs.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from conveyor_jupyter import kedro_jobs

FAKE_KEDRO = """
import sys, time
print("kedro stand-in", sys.argv[1:], flush=True)
time.sleep(float({sleep}))
sys.exit({code})
"""


def _project(tmp_path: Path, *, sleep: float, code: int) -> Path:
    project = tmp_path / "project"
    (project / "kedro").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.kedro]\n")
    (project / "kedro" / "__init__.py").write_text("")
    (project / "kedro" / "__main__.py").write_text(FAKE_KEDRO.format(sleep=sleep, code=code))
    return project


def _wait_for(job: kedro_jobs.KedroJob, states: set[str], timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = job.state()
        if state["state"] in states:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job.job_id} never reached {states}: {job.state()}")


def test_reader_follows_a_run_from_queued_to_its_end_without_a_read_error(tmp_path: Path) -> None:
    project = _project(tmp_path, sleep=0.5, code=3)
    job = kedro_jobs.start(project, "data_processing", ["a=1"], tmp_path / "jobs", {})
    seen: list[str] = []
    errors: list[Exception] = []

    def read() -> None:
        while not seen or seen[-1] not in ("success", "failed"):
            try:
                state = job.state()["state"]
            except Exception as exc:  # a partial state.json would land here
                errors.append(exc)
                return
            if not seen or seen[-1] != state:
                seen.append(state)

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(timeout=15)
    assert not reader.is_alive() and errors == []
    assert seen[-1] == "failed" and set(seen) <= {"queued", "running", "failed"}
    final = job.state()
    assert final["returncode"] == 3 and "exited with 3" in final["message"]
    assert "'--params', 'a=1'" in job.log()
    assert sorted(p.name for p in job.folder.iterdir()) == ["kedro.log", "runner.log", "state.json"]


def test_a_killed_runner_reads_as_failed_not_running_forever(tmp_path: Path) -> None:
    project = _project(tmp_path, sleep=60, code=0)
    job = kedro_jobs.start(project, "__default__", [], tmp_path / "jobs", {})
    running = _wait_for(job, {"running"})
    os.killpg(running["pid"], signal.SIGKILL)  # the runner and its kedro run, as an OOM kill would
    state = _wait_for(job, {"failed"}, timeout=5)
    assert f"runner (pid {running['pid']}) ended without recording" in state["message"]
    assert job.view().state == "failed"


def test_a_second_run_on_the_same_data_folder_is_refused_until_the_first_ends(tmp_path: Path) -> None:
    project, root = _project(tmp_path, sleep=60, code=0), tmp_path / "jobs"
    first = kedro_jobs.start(project, "__default__", [], root, {})
    _wait_for(first, {"running"})
    with pytest.raises(kedro_jobs.KedroJobError, match=f"job {first.job_id}.*--params data_root="):
        kedro_jobs.start(project, "training", [], root, {})
    own_folder = kedro_jobs.start(project, "training", [f"data_root={tmp_path / 'other'}"], root, {})
    assert _wait_for(own_folder, {"running"})["state"] == "running"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted([first.job_id, own_folder.job_id])

    for job in (first, own_folder):
        os.killpg(job.state()["pid"], signal.SIGKILL)
        _wait_for(job, {"failed"}, timeout=5)
    again = kedro_jobs.start(project, "__default__", [], root, {})  # the lock died with the runner
    assert _wait_for(again, {"running"})["state"] == "running"
    os.killpg(again.state()["pid"], signal.SIGKILL)
