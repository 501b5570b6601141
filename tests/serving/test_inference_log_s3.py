"""The inference log on an S3 API: a real gateway writes it, the monitors' readers read it back.

``moto_server`` stands in for a cloud or S3-compatible store (MinIO, R2, Ceph). Nothing in
Conveyor is told about it: the endpoint and credentials come the way a user of such a store
gives them to botocore, through ``AWS_ENDPOINT_URL_S3`` and ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` in the environment, and the log URL is just ``s3://bucket/prefix``.
"""

from __future__ import annotations

import math
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conveyor.clients.gateway import GatewayClient
from conveyor.core import inference_log
from conveyor.core.drift.window import RowCounter, Window, read_window
from conveyor.core.inference_log.layout import ROOT_MARKER
from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer
from conveyor.local.process import free_port, log_tail, start_group, stop_group, wait_http
from conveyor.triggers.inference_log import InferenceLogUnreadable, LogCheck

pytestmark = pytest.mark.integration

BUCKET = "conveyor-logs"
PREFIX = "inference-log"
LOG_URL = f"s3://{BUCKET}/{PREFIX}"
MODEL = "s3_log_flights"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``moto_server`` process on a free loopback port."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = start_group([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/moto-api/", timeout=30, proc=proc)
    except (RuntimeError, TimeoutError) as exc:
        stop_group(proc)
        raise RuntimeError(f"moto_server did not start: {exc}\n{log_tail(log)}") from exc
    try:
        yield url
    finally:
        stop_group(proc)


@pytest.fixture(scope="module")
def s3_env(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """What a user of an S3-compatible store sets; child processes (the gateway) inherit it."""
    nowhere = tmp_path_factory.mktemp("aws") / "none"
    env = {
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # a developer's own ~/.aws profile or an instance role must not take part
        "AWS_CONFIG_FILE": str(nowhere),
        "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


@pytest.fixture(scope="module")
def bucket(s3_env: dict[str, str]) -> Any:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    return s3


def _wait(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def _json_rows(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items() if k != "delayed"}
        for row in frame.to_dict("records")
    ]


def test_gateway_logs_to_s3_and_monitors_read_it_back(
    mlflow_server: MlflowServer, bucket: Any, s3_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.support.models import eval_frame, register_flight_model

    version = register_flight_model(
        mlflow_server.url, MODEL, alias="champion", max_rows=2000, max_epochs=2
    ).version
    rows = _json_rows(eval_frame(max_rows=2000).head(6))
    server = GatewayServer(
        root=tmp_path / "gateway",
        tracking_uri=mlflow_server.url,
        deployments={"flights": f"models:/{MODEL}@champion"},
        log_url=LOG_URL,
        extra_args=["--log-flush-interval-s", "0.5"],
    )
    now = pd.Timestamp.now(tz="UTC")
    window = Window(now - timedelta(hours=1), now + timedelta(hours=1))
    with server, GatewayClient(server.url, server.token, timeout=60) as client:
        # Before any request the root exists for the monitors: on an object store a prefix exists
        # only once it holds an object, so the writer leaves a marker there.
        check = LogCheck(LOG_URL)

        def root_visible() -> bool:
            try:
                check.window("predictions", 2, None)
            except InferenceLogUnreadable:
                return False
            return True

        assert _wait(root_visible, bool, timeout=10), log_tail(server.log_path)
        counter = RowCounter(LOG_URL, model_version=str(version))
        assert counter.count(window) == 0

        answered: dict[str, dict] = {}
        for batch in (rows[:3], rows[3:]):
            request_id = uuid.uuid4().hex
            response = client.predict(
                {"dataframe_records": batch}, deployment="flights", x_request_id=request_id
            )
            assert response.status_code == 200, f"{response.text}\n{log_tail(server.log_path)}"
            for i, prediction in enumerate(response.json()["predictions"]):
                answered[f"{request_id}-{i}"] = prediction
            # The triggerer's counter polls in one long-lived process: the second batch must
            # show up although the first one's hour folder was listed already.
            expected = len(answered)
            counted = _wait(lambda: counter.count(window), lambda n, e=expected: n >= e)
            assert counted == expected, f"{counted} rows, not {expected}\n{log_tail(server.log_path)}"
        labels = {rid: i % 2 for i, rid in enumerate(sorted(answered))}
        assert client.feedback([{"request_id": r, "label": v} for r, v in labels.items()]) == {
            "accepted": 6,
            "matched": 6,
        }
        feedback = _wait(
            lambda: inference_log.read_feedback(LOG_URL, window.start, window.end),
            lambda frame: len(frame) >= 6,
        )

    # Read back with the drift sensor's reader: exactly the rows the gateway answered.
    logged = read_window(LOG_URL, window, model_version=str(version)).set_index("request_id")
    assert sorted(logged.index) == sorted(answered)
    assert set(logged["deployment"]) == {"flights"} and set(logged["slot"]) == {"stable"}
    assert set(logged["model_name"]) == {MODEL}
    for rid, prediction in answered.items():
        assert logged.loc[rid, "delayed"] == prediction["delayed"]
        assert logged.loc[rid, "delay_probability"] == pytest.approx(prediction["delay_probability"])
    assert logged.loc[sorted(answered)[0], "carrier"] in {row["carrier"] for row in rows}
    joined = inference_log.join_feedback(logged.reset_index(), feedback).set_index("request_id")
    assert joined["label"].to_dict() == labels
    check.window("predictions", 2, None)  # every file in the window is whole Parquet
    check.window("feedback", 2, None)

    # The objects are in the bucket, in the log's layout; nothing went to a local folder.
    listed = bucket.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
    keys = [item["Key"] for item in listed.get("Contents", [])]
    hour = f"date={now:%Y-%m-%d}/hour="
    predictions = [k for k in keys if k.startswith(f"{PREFIX}/predictions/{hour}") and k.endswith(".parquet")]
    feedback_keys = [k for k in keys if k.startswith(f"{PREFIX}/feedback/{hour}") and k.endswith(".parquet")]
    assert len(predictions) >= 2 and feedback_keys, keys
    assert f"{PREFIX}/{ROOT_MARKER}" in keys
    assert not any("dead_letter" in k for k in keys), keys
    assert not (server.root / "inference-log").exists()
