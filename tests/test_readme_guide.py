"""The README's "Use Conveyor with your project" guide, followed literally in a temp folder.

Every fenced block of that section runs as written, in order: ``bash`` blocks line by line in one
shell state (``cd`` and ``export`` carry over; a line ending in `` &`` is a service, stopped at
the end), and a block whose first line is ``# <path>`` is written to that file; a ``yaml`` block
headed ``# <path>: <key>`` replaces that top-level key of the YAML file. Two things are not
the guide's to do: the install line (this suite's environment is that install) and the
clients. While ``conveyor deploy ... --wait`` follows the canary, a thread plays the clients the
guide describes: it scores held-out patients and sends their true values as feedback, so the
canary is judged on its online MAE. The test asserts what the guide promises: a registered
version with its contract, two versions, and the canary promoted to 100 %.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Use Conveyor with your project"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
BATCH = 10
_VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"


def guide_blocks() -> list[tuple[str, str]]:
    """(language, body) of each fenced block of the guide section, in order."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return [(lang, body) for lang, body in _FENCE.findall(text[start : end if end > 0 else None])]


class Shell:
    """What the guide's reader has: a working directory, exported variables, background services."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.services: list[tuple[str, subprocess.Popen]] = []
        self.transcript: list[str] = []

    def run(self, line: str, timeout: float = 600) -> str:
        self.transcript.append(f"$ {line}")
        words = shlex.split(line)
        if words[0] == "cd":
            self.cwd = (self.cwd / words[1]).resolve()
            return ""
        if words[0] == "export":
            for assignment in words[1:]:
                key, _, value = assignment.partition("=")
                self.env[key] = os.path.expandvars(value)
            return ""
        if line.endswith("&"):
            log = open(self.cwd / f"service-{len(self.services)}.log", "w")  # noqa: SIM115 - closed with the process
            process = subprocess.Popen(
                line[:-1],
                shell=True,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                executable="/bin/bash",
            )
            self.services.append((log.name, process))
            return ""
        done = subprocess.run(
            line,
            shell=True,
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            executable="/bin/bash",
        )
        output = done.stdout + done.stderr
        self.transcript.append(output[-3000:])
        if done.returncode != 0:
            raise AssertionError(
                f"`{line}` exited {done.returncode}:\n{output[-6000:]}\n{self.service_logs()}"
            )
        return output

    def write(self, path: str, body: str) -> None:
        target = self.cwd / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)

    def set_yaml_key(self, path: str, key: str, body: str) -> None:
        target = self.cwd / path
        document = yaml.safe_load(target.read_text())
        document[key] = yaml.safe_load(body)[key]
        target.write_text(yaml.safe_dump(document, sort_keys=False))

    def service_logs(self) -> str:
        return "\n".join(f"--- {name}\n{Path(name).read_text()[-3000:]}" for name, _ in self.services)

    def stop(self) -> None:
        for _, process in self.services:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


class Clients(threading.Thread):
    """Callers of the deployment: ten held-out patients per request, then their true values
    (row ids ``<x-request-id>-<i>``), so each analysis interval holds hundreds of labelled rows."""

    def __init__(self, gateway: str, deployment: str, rows: list[dict], truth: list[float]) -> None:
        super().__init__(daemon=True)
        self.gateway, self.deployment, self.rows, self.truth = gateway, deployment, rows, truth
        self.stopped = threading.Event()
        self.answered = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.gateway, timeout=10) as http:
            start = 0
            while not self.stopped.is_set():
                batch = [(start + k) % len(self.rows) for k in range(BATCH)]
                answer = http.post(
                    f"/deployments/{self.deployment}/invocations",
                    json={"dataframe_records": [self.rows[i] for i in batch]},
                )
                if answer.status_code == 200:
                    request_id = answer.headers["x-request-id"]
                    feedback = [
                        {"request_id": f"{request_id}-{k}", "label": self.truth[i]}
                        for k, i in enumerate(batch)
                    ]
                    http.post("/feedback", json={"feedback": feedback})
                    self.answered += 1
                start += BATCH
                time.sleep(0.02)


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_REGISTRY", "CONVEYOR_"))
    }
    env["PATH"] = f"{_VENV_BIN}:{env['PATH']}"
    env["KEDRO_DISABLE_TELEMETRY"] = "1"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    session = Shell(tmp_path, env)
    yield session
    session.stop()


def test_the_guide_takes_a_new_kedro_project_to_a_canaried_model(shell: Shell) -> None:
    blocks = guide_blocks()
    assert len(blocks) >= 8, "the guide lost its steps"
    port = int(re.search(r"--port (\d+)", README.read_text().split(SECTION)[1]).group(1))
    assert _free(port), f"port {port} of the guide is taken on this machine"
    clients: Clients | None = None
    for lang, body in blocks:
        first = body.splitlines()[0]
        if lang == "yaml" and first.startswith("# ") and ": " in first:
            path, key = first[2:].split(": ", 1)
            shell.set_yaml_key(path.strip(), key.strip(), body)
        elif lang in ("python", "yaml") and first.startswith("# "):
            shell.write(first[2:].strip(), body)
        elif lang == "bash":
            for line in body.splitlines():
                line = line.split("  #", 1)[0].strip()
                if not line or line.startswith("#") or line.startswith("pip install"):
                    continue
                if line.startswith("conveyor deploy"):
                    clients = _start_clients(shell, port)
                try:
                    shell.run(line)
                finally:
                    if line.startswith("conveyor deploy") and clients is not None:
                        clients.stopped.set()
        else:
            raise AssertionError(f"a {lang or 'plain'} block the test cannot follow: {first!r}")

    project = shell.cwd
    from mlflow import MlflowClient

    store = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(store, store)
    versions = sorted(client.search_model_versions("name = 'diabetes'"), key=lambda v: int(v.version))
    assert [str(v.version) for v in versions] == ["1", "2"]
    contract = json.loads(versions[-1].tags["conveyor.contract"])
    assert contract["model"] == {
        "name": "diabetes",
        "task": "regression",
        "label": "target",
        "outputs": {"score": "predicted_progression"},
    }
    assert clients is not None and clients.answered > 0
    status = httpx.get(
        f"http://127.0.0.1:{port}/admin/deployments/diabetes",
        headers={"Authorization": f"Bearer {shell.env['CONVEYOR_GATEWAY_TOKEN']}"},
    ).json()
    assert status["slots"]["stable"]["model_version"] == "2", status
    rollout = status["rollout"]
    assert rollout["state"] == "succeeded", rollout["transitions"]
    judged = {c["name"]: c["passed"] for m in rollout["analysis"] for c in m["checks"]}
    assert judged.get("online_mae") is True, rollout  # judged on the model's own online metric


def _start_clients(shell: Shell, port: int) -> Clients:
    import pandas as pd

    held_out = pd.read_csv(shell.cwd / "data" / "01_raw" / "patients.csv").tail(100)
    rows = held_out.drop(columns=["target"]).to_dict("records")
    clients = Clients(f"http://127.0.0.1:{port}", "diabetes", rows, held_out["target"].astype(float).tolist())
    clients.start()
    return clients
