"""Helpers to run a local service as a child process group and wait until it answers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path


def debian_binary(name: str) -> str:
    """A program from the Debian package of the same name, also for a user whose PATH lacks /usr/sbin."""
    path = shutil.which(name, path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin")
    if path is None:
        raise RuntimeError(f"{name} is not installed: it comes from the Debian package of the same name")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_port_free(host: str, port: int) -> None:
    """Refuse to start a service on a taken port: the health check would reach the other one."""
    with socket.socket() as sock:
        if sock.connect_ex((host, port)) == 0:
            raise RuntimeError(f"port {port} on {host} is already in use by another process")


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Block until ``url`` answers 2xx; fail early with the log tail if ``proc`` died."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if 200 <= resp.status < 300:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = exc
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s (last error: {last_error})")


def start_group(
    cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """Start ``cmd`` in its own process group, output appended to ``log_path``.

    A process group lets ``stop_group`` end the service together with every worker it forked
    (gunicorn, uvicorn workers, Airflow's supervisors) instead of leaving orphans behind.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    return subprocess.Popen(
        list(cmd),
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )


def stop_group(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the whole group, SIGKILL whatever is still there after ``timeout``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def log_tail(path: Path, lines: int = 40) -> str:
    """The end of a service log, for error messages that say why a service did not start."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
