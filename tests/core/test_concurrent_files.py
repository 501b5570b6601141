"""Kedro scratch folders: private per run, removed afterwards, and a killed run's folder is
cleaned up by the next run on the host without touching a live run's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conveyor.core.kedro_runner import SCRATCH_PREFIX, scratch_folder


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_concurrent_runs_get_private_folders_that_are_removed(tmp_path: Path) -> None:
    barrier = threading.Barrier(4)
    seen: list[str] = []

    def run() -> None:
        with scratch_folder(str(tmp_path)) as scratch:
            (Path(scratch) / "05_model_input").mkdir()
            barrier.wait(timeout=10)  # all four folders exist at the same time
            seen.append(scratch)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(set(seen)) == 4
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_leaves_no_folder(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="training failed"), scratch_folder(str(tmp_path)):
        raise RuntimeError("training failed")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_runs_folder_is_removed_by_the_next_run_and_live_ones_are_kept(tmp_path: Path) -> None:
    host = socket.gethostname()
    killed = tmp_path / f"{SCRATCH_PREFIX}{host}-{_dead_pid()}-abc123"
    (killed / "06_models").mkdir(parents=True)
    (killed / "06_models" / "flight_model.pkl").write_bytes(b"x" * 1024)
    live = tmp_path / f"{SCRATCH_PREFIX}{host}-{os.getpid()}-def456"
    other_host = tmp_path / f"{SCRATCH_PREFIX}elsewhere-{_dead_pid()}-0a1b2c"
    for folder in (live, other_host):
        folder.mkdir()

    with scratch_folder(str(tmp_path)) as scratch:
        assert Path(scratch).name.startswith(f"{SCRATCH_PREFIX}{host}-{os.getpid()}-")
        assert not killed.exists()
        assert live.is_dir() and other_host.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other_host.name])
