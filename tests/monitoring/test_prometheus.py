"""Prometheus for real: promtool on the shipped rules, then a gateway and a Pushgateway scraped on loopback.

Real April traffic goes through a real gateway into its inference log; the drift sensor reads that
log, pushes its result, and Prometheus shows the gateway's and the monitor's series with the
contract labels, loads the rules, fires the drift alert and answers every dashboard query.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer
from conveyor.local.prometheus import ALERT_RULES, Prometheus, Pushgateway
from conveyor.sensors.drift import DataDriftSensor

DOCKER = Path(__file__).resolve().parents[2] / "docker"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "conveyor.json"
DEPLOYMENT = "flight-delays"


def test_shipped_rules_and_config_pass_promtool() -> None:
    rules = subprocess.run(["promtool", "check", "rules", str(ALERT_RULES)], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 9 rules found" in rules.stdout
    config = subprocess.run(
        ["promtool", "check", "config", str(DOCKER / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above means something: a rule with invalid PromQL fails it."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(conveyor_drift_share\n"
    )
    result = subprocess.run(["promtool", "check", "rules", str(broken)], capture_output=True, text=True)
    assert result.returncode != 0 and "unclosed left parenthesis" in (result.stdout + result.stderr)


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushgateway]:
    with Pushgateway(root=tmp_path_factory.mktemp("pushgateway")) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer, flight_model: dict[str, str]
) -> Iterator[GatewayServer]:
    server = GatewayServer(
        root=tmp_path_factory.mktemp("gateway"),
        tracking_uri=mlflow_server.url,
        deployments={DEPLOYMENT: f"models:/{flight_model['name']}/{flight_model['version']}"},
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, pushgateway: Pushgateway, gateway: GatewayServer
) -> Iterator[Prometheus]:
    server = Prometheus(
        root=tmp_path_factory.mktemp("prometheus"),
        targets={"conveyor-gateway": f"{gateway.host}:{gateway.port}"},
        pushgateway=f"{pushgateway.host}:{pushgateway.port}",
    )
    with server:
        yield server


def _eventually(probe: Callable[[], Any], timeout: float = 45.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    from flight_delays.schema import FEATURES

    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in rows[list(FEATURES)].to_dict("records")
    ]


def test_gateway_and_drift_series_rules_alerts_and_dashboard(
    gateway: GatewayServer,
    pushgateway: Pushgateway,
    prometheus: Prometheus,
    flight_model: dict[str, str],
    flights: Callable[[str], pd.DataFrame],
    mlflow_conn: str,
) -> None:
    version = flight_model["version"]
    rows = _records(flights("2013-04").sample(1200, random_state=21))
    with gateway.client() as client:
        for start in range(0, len(rows), 200):
            answer = client.predict({"dataframe_records": rows[start : start + 200]}, deployment=DEPLOYMENT)
            assert answer.status_code == 200, answer.text

    sensor = DataDriftSensor(
        task_id="data_drift",
        inference_log_url=gateway.inference_log_url,
        model_name=flight_model["name"],
        model_version=version,
        window_hours=1,
        min_rows=1000,
        deferrable=False,
        pushgateway_url=pushgateway.url,
    )
    poked = _eventually(lambda: (p := sensor.poke(context={})).is_done and p, what="the gateway's log flush")
    payload = poked.xcom_value
    assert payload["decision"] is True and "temp" in payload["result"]["drifted_features"]

    def series(query: str) -> list[dict[str, Any]]:
        return _eventually(lambda: prometheus.api("query", query=query)["result"], what=query)

    served = series(f'conveyor_requests_total{{deployment="{DEPLOYMENT}",slot="stable",status="200"}}')
    assert served[0]["metric"]["model_version"] == version and float(served[0]["value"][1]) >= 6
    latency = series(f'conveyor_request_latency_seconds_count{{deployment="{DEPLOYMENT}"}}')
    assert set(latency[0]["metric"]) >= {"deployment", "slot", "model_version"}

    temp = series(f'conveyor_drift_p_value{{model="{flight_model["name"]}",feature="temp"}}')[0]
    assert temp["metric"]["job"] == "conveyor_monitoring" and temp["metric"]["monitor"] == "data_drift"
    assert float(temp["value"][1]) < 1e-6
    detected = series(f'conveyor_drift_detected{{model="{flight_model["name"]}"}}')[0]
    assert detected["metric"]["detector"] == "data_drift/alibi-univariate" and detected["value"][1] == "1"
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        t["expr"].replace("$deployment", ".*").replace("$model", ".*")
        for panel in dashboard["panels"]
        for t in panel.get("targets", [])
    ]
    assert len(queries) >= 12
    # A rate needs two scrapes after the traffic. Once the traffic panel has them, the whole
    # dashboard is judged at that instant, so its 1m windows do not depend on how long the rule
    # and alert waits below take on a loaded machine.
    series(queries[0])
    observed_at = str(time.time())

    groups = _eventually(
        lambda: [
            g for g in prometheus.api("rules")["groups"] if all(r.get("health") == "ok" for r in g["rules"])
        ],
        what="rules evaluated",
    )
    assert {g["name"] for g in groups} == {"conveyor-monitoring", "conveyor-serving"}

    def firing() -> list[dict[str, Any]]:
        return [
            a
            for a in prometheus.api("alerts")["alerts"]
            if a["labels"]["alertname"] == "ConveyorDataDrift" and a["state"] == "firing"
        ]

    alerts = _eventually(firing, what="ConveyorDataDrift firing")
    assert [a["labels"]["model"] for a in alerts] == [flight_model["name"]]  # only this session's pushes

    answered = {  # raises on invalid PromQL
        q: prometheus.api("query", query=q, time=observed_at)["result"] for q in queries
    }
    scrapes = prometheus.api("query", query='up{job="conveyor-gateway"}[2m]', time=observed_at)["result"]
    assert answered[queries[0]], f"the traffic panel shows the gateway's requests; gateway scrapes: {scrapes}"
    assert any("conveyor_drift_p_value" in q and r for q, r in answered.items())
