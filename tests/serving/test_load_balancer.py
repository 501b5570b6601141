"""A real nginx in front of real uvicorn replicas (``tests.support.lb_upstream``): what clients see
when replicas die, refuse or change, and which requests nginx may replay on another replica."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conveyor.local import services
from conveyor.local.nginx import LoadBalancer, render_conf
from conveyor.local.process import free_port, start_group, stop_group, wait_http

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
JSON = {"Content-Type": "application/json"}


@dataclass
class Upstream:
    port: int
    journal: Path
    proc: subprocess.Popen

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def seen(self, prefix: str = "/") -> list[dict]:
        """The requests this replica received, including one it died on."""
        if not self.journal.exists():
            return []
        entries = [json.loads(line) for line in self.journal.read_text().splitlines()]
        return [e for e in entries if e["path"].startswith(prefix) and e["path"] != "/health"]

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[Callable[..., list[Upstream]]]:
    """Start ``n`` replicas at once (each with ``flags``), stopped after the test."""
    started: list[Upstream] = []

    def start(n: int, *flags: str) -> list[Upstream]:
        batch = []
        for _ in range(n):
            port = free_port()
            journal = tmp_path / f"upstream-{port}.jsonl"
            cmd = [sys.executable, "-m", "tests.support.lb_upstream", "--port", str(port), "--journal"]
            proc = start_group([*cmd, str(journal), *flags], tmp_path / f"upstream-{port}.log", cwd=REPO)
            batch.append(Upstream(port, journal, proc))
        started.extend(batch)
        for upstream in batch:
            wait_http(f"http://{upstream.address}/health", timeout=30, proc=upstream.proc)
        return batch

    yield start
    for upstream in started:
        stop_group(upstream.proc, timeout=5)


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[Callable[..., LoadBalancer]]:
    started: list[LoadBalancer] = []

    def start(replicas: list[Upstream], **kwargs: object) -> LoadBalancer:
        lb = LoadBalancer(tmp_path / "nginx", [u.address for u in replicas], **kwargs).start()
        started.append(lb)
        return lb

    yield start
    for lb in started:
        lb.stop()


def score(client: httpx.Client, path: str = "/invocations", **kwargs: object) -> httpx.Response:
    return client.post(path, json={"dataframe_records": [{"x": 1}]}, **kwargs)


def test_requests_reach_every_upstream_with_their_headers_over_kept_alive_connections(
    upstreams, balancer
) -> None:
    replicas = upstreams(3)
    lb = balancer(replicas)
    with httpx.Client(base_url=lb.url, timeout=10) as client:
        answers = [score(client, headers={"X-Request-Id": f"req-{i}"}) for i in range(30)]
    assert [r.status_code for r in answers] == [200] * 30
    assert [r.headers["x-request-id"] for r in answers] == [f"req-{i}" for i in range(30)]
    assert Counter(r.headers["x-upstream"] for r in answers) == {str(u.port): 10 for u in replicas}
    seen = [e for u in replicas for e in u.seen("/invocations")]
    assert sorted(e["request_id"] for e in seen) == sorted(f"req-{i}" for i in range(30))
    # keepalive: the ten requests each replica got came over fewer connections than ten
    assert all(len({e["client_port"] for e in u.seen()}) < 10 for u in replicas)


def test_a_killed_upstream_costs_no_client_request(upstreams, balancer) -> None:
    doomed, survivor = upstreams(2)
    lb = balancer([doomed, survivor])
    statuses: list[int | str] = []
    killed_at = None
    with httpx.Client(base_url=lb.url, timeout=10) as client:
        start = time.monotonic()
        while time.monotonic() - start < 3.0:
            if killed_at is None and time.monotonic() - start > 0.5:
                doomed.kill()
                killed_at = len(statuses)
            try:
                statuses.append(score(client).status_code)
            except httpx.HTTPError as exc:
                statuses.append(repr(exc))
            time.sleep(0.02)
    assert killed_at is not None and len(statuses) > 2 * killed_at
    assert Counter(statuses) == {200: len(statuses)}
    assert doomed.seen("/invocations"), "the killed replica served before it died"
    assert len(survivor.seen("/invocations")) >= len(statuses) - killed_at


@pytest.mark.parametrize("path", ["/invocations", "/deployments/flights/invocations"])
def test_a_503_on_scoring_is_answered_by_another_upstream(upstreams, balancer, path: str) -> None:
    (refusing,) = upstreams(1, "--invocations-status", "503")
    (healthy,) = upstreams(1)
    lb = balancer([refusing, healthy])
    with httpx.Client(base_url=lb.url, timeout=10) as client:
        answers = [score(client, path) for _ in range(6)]
    assert {(r.status_code, r.headers["x-upstream"]) for r in answers} == {(200, str(healthy.port))}
    assert refusing.seen(path), "the refusing replica was asked first at least once"


def test_when_every_upstream_refuses_scoring_their_answer_reaches_the_client(upstreams, balancer) -> None:
    """Each 503 takes a replica out for 2 s; nginx must neither answer "no live upstreams" itself
    nor refuse the paths that the replicas still serve."""
    replicas = upstreams(2, "--invocations-status", "503")
    lb = balancer(replicas)
    with httpx.Client(base_url=lb.url, timeout=10) as client:
        for _ in range(4):
            refused = score(client)
            assert refused.status_code == 503
            assert refused.json()["upstream"] == int(refused.headers["x-upstream"])
            assert client.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "replicas_reached"),
    [
        ("POST", "/admin/deployments/x/promote", 1),
        ("POST", "/feedback", 1),
        # nginx replays the idempotent methods, as HTTP allows: the admin API's PUT and DELETE
        # set or remove state, so a replay ends where the first one would have
        ("PUT", "/admin/deployments/x/weights", 2),
        ("DELETE", "/admin/deployments/x", 2),
    ],
)
def test_a_post_is_not_replayed_once_it_reached_an_upstream(
    upstreams, balancer, method: str, path: str, replicas_reached: int
) -> None:
    """Both replicas die on the request they get: a replay shows in the second one's journal."""
    replicas = upstreams(2, "--die-on", path)
    lb = balancer(replicas)
    body = None if method == "DELETE" else b'{"canary": 50, "shadow": 0}'
    with httpx.Client(base_url=lb.url, timeout=10) as client:
        response = client.request(method, path, content=body, headers={"X-Request-Id": "write-1"})
    assert response.status_code == 502
    assert sum(len(u.seen(path)) for u in replicas) == replicas_reached


def test_a_write_to_a_dead_upstream_goes_to_a_live_one(upstreams, balancer) -> None:
    """Refused connections are retried for every path: nothing was sent, nothing can apply twice."""
    dead, live = upstreams(2)
    dead.kill()  # before any request, so nginx holds no kept-alive connection to it
    lb = balancer([dead, live])
    with httpx.Client(base_url=lb.url, timeout=10) as client:
        answers = [client.post("/admin/deployments/x/promote", json={}) for _ in range(4)]
    assert {(r.status_code, r.headers["x-upstream"]) for r in answers} == {(200, str(live.port))}
    assert len(live.seen("/admin/")) == 4


def test_reload_switches_upstreams_and_keeps_them_when_nginx_refuses(upstreams, balancer) -> None:
    first, second = upstreams(2)
    lb = balancer([first])
    with httpx.Client(base_url=lb.url, timeout=10) as client:

        def ports(n: int = 6) -> set[str]:
            return {score(client).headers["x-upstream"] for _ in range(n)}

        assert ports() == {str(first.port)}
        lb.reload([second.address])
        assert ports() == {str(second.port)}
        lb.reload([first.address, second.address])
        assert ports() == {str(first.port), str(second.port)}
        with pytest.raises(RuntimeError, match="invalid port"):
            lb.reload(["127.0.0.1:99999"])
        assert ports() == {str(first.port), str(second.port)}
    assert lb.upstreams == [first.address, second.address]
    assert "99999" not in lb.conf_path.read_text()


def test_the_upstreams_413_reaches_the_client_unchanged(upstreams, balancer) -> None:
    replicas = upstreams(2)
    lb = balancer(replicas)
    too_large = b"[" + b"0," * 750_000 + b"0]"  # 1.5 MB: above the gateway's 1 MiB, below nginx's 2 MB
    with httpx.Client(base_url=lb.url, timeout=10) as client:
        response = client.post("/invocations", content=too_large, headers=JSON)
    assert response.status_code == 413
    assert response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert sum(len(u.seen("/invocations")) for u in replicas) == 1


def test_a_recorded_balancer_is_stopped_by_make_down(upstreams, balancer, tmp_path: Path) -> None:
    state_file = tmp_path / "services.json"
    lb = balancer(upstreams(1), state_file=state_file)
    assert services.running(state_file)["load-balancer"]["url"] == lb.url
    assert services.stop_all(state_file) == ["load-balancer"]
    assert lb.proc is not None and lb.proc.wait(timeout=5) is not None


def test_the_worker_user_is_set_only_when_given() -> None:
    root = Path("/srv/lb")
    assert "user " not in render_conf(root, 8080, ["127.0.0.1:8101"])
    assert "\nuser nobody nogroup;\n" in render_conf(root, 8080, ["127.0.0.1:8101"], "nobody nogroup")
    with pytest.raises(ValueError, match="at least one upstream"):
        render_conf(root, 8080, [])
