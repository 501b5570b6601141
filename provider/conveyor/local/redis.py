"""A real Debian ``redis-server`` on 127.0.0.1: the Celery broker of a local CeleryExecutor Airflow.

The broker only carries task messages between the scheduler and the workers; what Airflow must
remember lives in PostgreSQL (task states, and Celery's results through ``db+postgresql``). So the
server keeps nothing on disk (no RDB snapshots, no AOF): a restart loses at most queued messages,
which Airflow re-queues itself after ``[scheduler] task_queued_timeout``.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.local.process import (
    debian_binary,
    ensure_port_free,
    free_port,
    log_tail,
    start_group,
    stop_group,
)


@dataclass
class LocalRedis:
    """One server whose working folder and log live under ``root``."""

    root: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The broker URL Celery takes (database 0)."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.root / "redis-server.log"

    def start(self, timeout: float = 30.0) -> LocalRedis:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            ensure_port_free(self.host, self.port)
            cmd = [
                debian_binary("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                self.host,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root.resolve()),
                "--logfile",
                "",  # stdout, which start_group appends to log_path
            ]
        except RuntimeError as exc:
            raise RuntimeError(f"redis-server did not start: {exc}") from exc
        self.proc = start_group(cmd, self.log_path)
        try:
            self._wait_ready(timeout)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"redis-server did not start: {exc}\n{log_tail(self.log_path)}") from exc
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until the server answers PING: the port is bound before the dataset is loaded."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            if self.ping():
                return
            time.sleep(0.1)
        raise TimeoutError(f"redis-server on {self.host}:{self.port} did not answer PING in {timeout:.0f}s")

    def ping(self) -> bool:
        """Whether the server answers ``PING`` (the inline protocol needs no client library)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            # Nothing to flush (no persistence), so a server still there after 5 s is killed.
            stop_group(self.proc, timeout=5)
            self.proc = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
