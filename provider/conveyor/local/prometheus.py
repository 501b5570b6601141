"""Real Prometheus and Pushgateway processes (Debian binaries) on 127.0.0.1.

Prometheus loads the project's alert rules from ``docker/prometheus/alerts.yml`` (the file the
compose deployment mounts) and scrapes the Pushgateway plus any given targets (e.g. a gateway),
so the demo and the tests exercise the shipped rules, not a copy.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.local.process import (
    debian_binary,
    ensure_port_free,
    free_port,
    log_tail,
    start_group,
    stop_group,
    wait_http,
)

ALERT_RULES = Path(__file__).resolve().parents[3] / "docker" / "prometheus" / "alerts.yml"


@dataclass
class Pushgateway:
    """Where short-lived monitoring tasks push drift and performance metrics."""

    root: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> Pushgateway:
        self.root.mkdir(parents=True, exist_ok=True)
        ensure_port_free(self.host, self.port)
        log = self.root / "pushgateway.log"
        # Debian's build persists to /var/lib/prometheus/pushgateway.data by default, which every
        # instance on the host would share (a test would see the demo's pushes): keep it in root.
        cmd = [
            debian_binary("prometheus-pushgateway"),
            f"--web.listen-address={self.host}:{self.port}",
            f"--persistence.file={self.root / 'pushgateway.data'}",
        ]
        self.proc = start_group(cmd, log)
        try:
            wait_http(f"{self.url}/-/ready", timeout=timeout, proc=self.proc)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"pushgateway did not start: {exc}\n{log_tail(log)}") from exc
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def __enter__(self) -> Pushgateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Prometheus:
    """Prometheus with the project's alert rules, scraping ``targets`` (``job -> host:port``, or
    a list of them: the replicas of one gateway are one job).

    ``honor_labels`` keeps the ``job``/``model`` labels that the pushing task set, as the
    Pushgateway documentation requires.
    """

    root: Path
    targets: dict[str, str | list[str]] = field(default_factory=dict)
    pushgateway: str | None = None
    rule_files: list[Path] = field(default_factory=lambda: [ALERT_RULES])
    scrape_interval: str = "1s"
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config(self) -> dict[str, Any]:
        jobs: list[dict[str, Any]] = [
            {
                "job_name": job,
                "static_configs": [{"targets": [target] if isinstance(target, str) else target}],
            }
            for job, target in self.targets.items()
        ]
        if self.pushgateway:
            jobs.append(
                {
                    "job_name": "pushgateway",
                    "honor_labels": True,
                    "static_configs": [{"targets": [self.pushgateway]}],
                }
            )
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": jobs,
        }

    def start(self, timeout: float = 60.0) -> Prometheus:
        self.root.mkdir(parents=True, exist_ok=True)
        ensure_port_free(self.host, self.port)
        config = self.root / "prometheus.yml"
        config.write_text(json.dumps(self.config(), indent=2))  # JSON is valid YAML
        log = self.root / "prometheus.log"
        cmd = [
            debian_binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.root / 'tsdb'}",
            f"--web.listen-address={self.host}:{self.port}",
        ]
        self.proc = start_group(cmd, log)
        try:
            wait_http(f"{self.url}/-/ready", timeout=timeout, proc=self.proc)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"prometheus did not start: {exc}\n{log_tail(log)}") from exc
        return self

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; returns ``data`` or raises with Prometheus' error message."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 4xx carries Prometheus' JSON error (bad PromQL...)
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path} failed: {body.get('error')}")
        return body["data"]

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
