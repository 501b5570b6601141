"""A real Debian ``nginx`` on 127.0.0.1 as the load balancer in front of N gateway replicas.

Open-source nginx has no active health checks (``health_check`` is NGINX Plus only): a replica
is found dead passively, by a failed request, and skipped for ``fail_timeout``. A scoring request
that failed that way is retried on another replica, so clients do not see the failure; a POST to
any other path is retried only when nothing of it reached the replica.
"""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.local import services
from conveyor.local.process import (
    debian_binary,
    ensure_port_free,
    free_port,
    log_tail,
    start_group,
    stop_group,
)

# The gateway answers 413 itself above 1 MiB, with its JSON error; nginx's limit sits above it so
# that answer, not nginx's HTML page, reaches the client.
MAX_BODY = "2m"
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def render_conf(
    root: Path,
    port: int,
    upstreams: list[str],
    worker_user: str | None = None,
    listen_host: str = "127.0.0.1",
) -> str:
    """The whole ``nginx.conf``: one upstream group of ``host:port`` replicas behind ``listen_host:port``.

    ``listen_host`` is loopback here; ``docker/nginx/render.py`` renders the compose deployment's
    file with ``0.0.0.0`` (and ``root`` inside the container), so both run the same directives.
    """
    if not upstreams:
        raise ValueError("a load balancer needs at least one upstream")
    servers = "\n".join(
        [f"        server {upstream} max_fails=1 fail_timeout=2s;" for upstream in upstreams]
        + [f"        server {upstream} backup max_fails=0;" for upstream in upstreams]
    )
    temp_paths = "\n".join(f"    {name}_temp_path {root / 'temp' / name};" for name in TEMP_PATHS)
    user = f"user {worker_user};\n" if worker_user else ""
    return f"""\
# Written by conveyor.local.nginx; rewritten on every reload.
{user}daemon off;
# One worker: a Python replica saturates long before one nginx worker, and least_conn counts
# exactly what that one worker has in flight.
worker_processes 1;
pid {root / "nginx.pid"};
error_log stderr notice;  # notice: the reload messages that reload() waits for

# Two descriptors per proxied request: the client's and the replica's.
worker_rlimit_nofile 8192;
events {{
    worker_connections 4096;
}}

http {{
    access_log off;
{temp_paths}
    client_max_body_size {MAX_BODY};
    # Bodies and answers stay in memory, so the workers never open a file: as root they run as
    # nobody, who may not be able to reach a root under a private (0700) folder.
    client_body_buffer_size {MAX_BODY};
    proxy_max_temp_file_size 0;

    upstream gateways {{
        # least_conn, not round-robin: scoring latency varies (batches, model size, a replica
        # loading a version), and a slow replica should get fewer new requests, not its turn.
        # It must come before keepalive.
        least_conn;
        # Each replica twice: once skipped for 2 s after a failure (a 503 on scoring counts), once
        # as a never-skipped backup. With every replica skipped nginx would answer 502 "no live
        # upstreams" to all requests, e.g. after each replica answered 503 for one deployment that
        # none of them has loaded yet; the backups keep it answering what the replicas answer.
{servers}
        keepalive 32;
        # Below uvicorn's 5 s keep-alive, so nginx drops an idle connection before the replica
        # does: a request sent on a connection the replica just closed fails after it was sent.
        keepalive_timeout 4s;
    }}

    server {{
        listen {listen_host}:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_connect_timeout 1s;
        # At most 3, and no more tries than replicas: a further one would meet a replica again
        # (as a backup) or find none left and turn the replicas' last answer into nginx's own 502.
        proxy_next_upstream_tries {min(3, len(upstreams))};

        # Scoring is a pure function of the body: replaying it on another replica is safe.
        location ~ ^/(deployments/[^/]+/)?invocations$ {{
            proxy_pass http://gateways;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
        }}

        # Everything else: a replayed POST (promote, rollback, rollouts, /feedback) would apply
        # twice. Without non_idempotent, nginx passes a POST to the next replica only when none
        # of it was sent (its connection failed). nginx does replay PUT and DELETE, as HTTP
        # allows: the admin API's are set/remove writes (a replay ends in the same state, or 412
        # under If-Match), and no nginx setting stops a small PUT from being replayed.
        location / {{
            proxy_pass http://gateways;
            proxy_next_upstream error timeout;
            # A slot load holds its PUT for as long as the load takes: the admin client (120 s),
            # not nginx, gives up, else nginx would time it out and replay it on another replica.
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def _worker_user() -> str | None:
    """``nobody`` and its group when running as root; nginx ignores ``user`` (with a warning) otherwise."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    return f"nobody {grp.getgrgid(nobody.pw_gid).gr_name}"


@dataclass
class LoadBalancer:
    """nginx balancing ``upstreams`` (``host:port``); config, pid, temp files and log under ``root``.

    With ``state_file`` set, the master is recorded in it so ``make down`` stops it.
    """

    root: Path
    upstreams: list[str]
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    state_file: Path | None = None
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def conf_path(self) -> Path:
        return self.root / "nginx.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "nginx.log"

    def _write_conf(self, upstreams: list[str]) -> None:
        self.conf_path.write_text(render_conf(self.root, self.port, upstreams, _worker_user()))

    def start(self, timeout: float = 30.0) -> LoadBalancer:
        self.root = self.root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "temp").mkdir(exist_ok=True)
        try:
            ensure_port_free(self.host, self.port)
            self._write_conf(self.upstreams)
            binary = debian_binary("nginx")
        except (RuntimeError, ValueError) as exc:
            raise RuntimeError(f"nginx did not start: {exc}") from exc
        cmd = [binary, "-p", str(self.root), "-c", str(self.conf_path), "-e", "stderr"]
        self.proc = start_group(cmd, self.log_path)
        try:
            self._wait_listening(timeout)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"nginx did not start: {exc}\n{log_tail(self.log_path)}") from exc
        if self.state_file is not None:
            services.record(self.state_file, "load-balancer", self.proc.pid, url=self.url)
        return self

    def _wait_listening(self, timeout: float) -> None:
        """Until the port accepts: nothing behind nginx need be up, so there is no URL to probe."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError("nginx exited before it listened")
            with socket.socket() as sock:
                if sock.connect_ex((self.host, self.port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"nginx did not listen on {self.host}:{self.port} within {timeout:.0f}s")

    def reload(self, upstreams: list[str], timeout: float = 10.0) -> None:
        """Balance over ``upstreams`` from now on; raises, and keeps the old ones, if nginx refuses.

        nginx rereads its config on SIGHUP, starts new workers and asks the old ones to finish
        what they serve; returning once every old worker has stopped accepting means no new
        request reaches the old list.
        """
        if self.proc is None:
            raise RuntimeError("reload() needs a running nginx: call start() first")
        previous = self.conf_path.read_text()
        self._write_conf(upstreams)
        offset = self.log_path.stat().st_size
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                news = log.read().decode(errors="replace")
            if "[emerg]" in news:
                self.conf_path.write_text(previous)  # what runs, for the next start
                raise RuntimeError(f"nginx kept its old upstreams, it refused {upstreams}:\n{news}")
            # Each old worker logs this before it closes its listening socket.
            if "gracefully shutting down" in news:
                self.upstreams = list(upstreams)
                return
            time.sleep(0.05)
        raise TimeoutError(f"nginx did not reload within {timeout:.0f}s:\n{log_tail(self.log_path)}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, timeout=5)
            self.proc = None
            if self.state_file is not None:
                services.forget(self.state_file, "load-balancer")

    def __enter__(self) -> LoadBalancer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
