"""``make down`` stops what was recorded, including forked children, and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

from conveyor.local import services
from conveyor.local.process import start_group


def _children_of(proc: subprocess.Popen) -> list[psutil.Process]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = psutil.Process(proc.pid).children(recursive=True)
        if kids:
            return kids
        time.sleep(0.05)
    raise AssertionError("the test service never forked its worker")


def _gone(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_stop_all_ends_the_whole_process_group_and_clears_the_record(tmp_path: Path) -> None:
    state = tmp_path / "services.json"
    # A "service" that forks a worker, like the scheduler forking LocalExecutor workers.
    proc = start_group(["sh", "-c", "sleep 300 & wait"], tmp_path / "svc.log")
    worker = _children_of(proc)[0]
    services.record(state, "svc", proc.pid, url="http://127.0.0.1:1")
    assert list(services.running(state)) == ["svc"]

    assert services.stop_all(state, timeout=5) == ["svc"]
    proc.wait(timeout=5)
    assert _gone(worker), "the forked worker survived make down"
    assert services.running(state) == {}


def test_a_stale_record_never_kills_a_process_that_reused_the_pid(tmp_path: Path) -> None:
    state = tmp_path / "services.json"
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        services.record(state, "old", bystander.pid, group=False)
        # The recorded process started long ago and is gone; its pid now belongs to the bystander.
        data = json.loads(state.read_text())
        data["old"]["create_time"] -= 1000
        state.write_text(json.dumps(data))

        assert services.running(state) == {}
        assert services.stop_all(state, timeout=2) == []
        assert bystander.poll() is None, "make down killed an unrelated process"
    finally:
        bystander.kill()
        bystander.wait()
