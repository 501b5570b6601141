"""The record of local services left running (``var/services.json``), so ``make down`` stops them all.

``make airflow`` and ``make demo`` start services and exit; the process that later stops them
holds no ``Popen`` handles. Every starter therefore records the pid (and whether it leads a
process group) here, and ``python -m conveyor.local.services`` stops whatever is recorded.
The process start time is kept too, so a stale record never kills an unrelated process that
happens to have reused the pid.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

from conveyor.core import atomic

DEFAULT_STATE_FILE = Path("var/services.json")


@contextmanager
def _locked(state_file: Path) -> Iterator[dict[str, dict]]:
    """Read-modify-write under an exclusive lock: several starters may record at once.

    The lock orders the writers; ``running`` reads without it (``make down`` must not wait for a
    starter), so the file is replaced atomically and a reader sees the old record or the new one.
    """
    state_file.parent.mkdir(parents=True, exist_ok=True)
    with open(state_file.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        yield state
        atomic.write_text(state_file, json.dumps(state, indent=2) + "\n")


def record(
    state_file: Path,
    name: str,
    pid: int,
    *,
    group: bool = True,
    stop_signal: str = "SIGTERM",
    url: str | None = None,
) -> None:
    """Remember that ``name`` runs as ``pid``; ``group`` when it leads its own process group."""
    entry = {
        "pid": pid,
        "group": group,
        "signal": stop_signal,
        "create_time": psutil.Process(pid).create_time(),
        "url": url,
    }
    with _locked(state_file) as state:
        state[name] = entry


def forget(state_file: Path, *names: str) -> None:
    with _locked(state_file) as state:
        for name in names:
            state.pop(name, None)


def running(state_file: Path) -> dict[str, dict]:
    """The recorded services whose process is still the one that was recorded."""
    if not state_file.exists():
        return {}
    state = json.loads(state_file.read_text())
    return {name: entry for name, entry in state.items() if _is_recorded_process(entry)}


def stop_all(state_file: Path, timeout: float = 20.0) -> list[str]:
    """Stop every recorded service, newest first (Airflow before the database it writes to)."""
    stopped = []
    with _locked(state_file) as state:
        for name in reversed(list(state)):
            entry = state.pop(name)
            if _is_recorded_process(entry):
                stop_pid(
                    entry["pid"], sig=signal.Signals[entry["signal"]], group=entry["group"], timeout=timeout
                )
                stopped.append(name)
    return stopped


def _is_recorded_process(entry: dict) -> bool:
    try:
        return abs(psutil.Process(entry["pid"]).create_time() - entry["create_time"]) < 1.0
    except psutil.NoSuchProcess:
        return False


def stop_pid(pid: int, *, sig: int = signal.SIGTERM, group: bool = False, timeout: float = 15.0) -> bool:
    """Signal a process (or its whole group), wait for it to go, SIGKILL what lingers.

    Works on pids this process did not start, which ``conveyor.local.process.stop_group``
    cannot (it needs the Popen). Returns False when there was nothing to stop.
    """
    kill = os.killpg if group else os.kill
    try:
        kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, group):
            return True
        time.sleep(0.1)
    with suppress(ProcessLookupError):
        kill(pid, signal.SIGKILL)
    return True


def _alive(pid: int, group: bool) -> bool:
    """Zombies count as gone: an un-reaped child no longer holds ports or files."""
    if group:
        return any(
            p.info["status"] != psutil.STATUS_ZOMBIE
            for p in psutil.process_iter(["status"])
            if _pgid(p.pid) == pid
        )
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stop every local service that Conveyor started.")
    parser.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE)
    args = parser.parse_args(argv)
    stopped = stop_all(args.state_file)
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing recorded as running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
