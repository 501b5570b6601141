"""The traffic replay against a real gateway: every row answered, logged and labelled under its own id."""

from __future__ import annotations

import time
from datetime import timedelta

import pandas as pd
import pytest

from conveyor.core.inference_log import join_feedback, read_feedback, read_predictions
from conveyor.local.gateway import GatewayServer
from conveyor.local.process import free_port
from conveyor.local.replay import Replay, ReplayError
from flight_delays.schema import FEATURES


@pytest.fixture(scope="module")
def april() -> pd.DataFrame:
    """Real April 2013 flights, as the demo replays them."""
    from conveyor.demo.traffic import flights_traffic

    return flights_traffic("2013-04", max_rows=150)


def _logged(url: str, prefix: str, expected: int, kind: str = "predictions") -> pd.DataFrame:
    """The gateway writes its log in the background (every few seconds): wait for our rows."""
    deadline = time.monotonic() + 30
    while True:
        now = pd.Timestamp.now(tz="UTC")
        reader = read_predictions if kind == "predictions" else read_feedback
        frame = reader(url, now - timedelta(hours=1), now + timedelta(minutes=1))
        if not frame.empty:
            frame = frame[frame["request_id"].str.startswith(prefix)]
        if len(frame) >= expected or time.monotonic() > deadline:
            return frame
        time.sleep(0.5)


def test_every_row_is_answered_logged_and_labelled_later(gateway: GatewayServer, april: pd.DataFrame) -> None:
    replay = Replay(gateway.url, april, features=FEATURES, label="delayed", rate=200, feedback_delay_s=0.5)
    stats = replay.run()

    assert (stats.sent, stats.answered, stats.failed) == (150, 150, 0), stats.errors
    assert set(stats.by_version) == {f"v{gateway.deployments['flights'].rsplit('/', 1)[1]}/stable"}
    assert (stats.feedback_sent, stats.feedback_matched) == (150, 150)

    predictions = _logged(gateway.inference_log_url, replay.prefix, 150)
    feedback = _logged(gateway.inference_log_url, replay.prefix, 150, kind="feedback")
    assert len(predictions) == 150 and len(feedback) == 150
    joined = join_feedback(predictions, feedback)
    row = joined["request_id"].str.rsplit("-", n=1).str[1].astype(int)
    # Each label reached the prediction of its own flight, and the logged features are that flight's.
    assert (joined["label"].to_numpy() == april["delayed"].to_numpy()[row]).all()
    assert (joined["dest"].to_numpy() == april["dest"].to_numpy()[row]).all()
    assert joined["temp"].isna().sum() == april["temp"].isna().sum()


def test_background_replay_repeats_and_follows_a_canary(
    gateway: GatewayServer, demo_model: str, april: pd.DataFrame
) -> None:
    with gateway.client() as admin:
        admin.deploy_slot("replay-canary", demo_model)
        admin.deploy_slot("replay-canary", demo_model, slot="canary")
        admin.set_weights("replay-canary", canary=50)
        replay = Replay(
            gateway.url,
            april.head(20),
            features=FEATURES,
            label="delayed",
            deployment="replay-canary",
            rate=100,
            repeat=True,
        )
        with replay:
            replay.wait_for(60, timeout=60)
        stats = replay.stats

    # 20 rows, replayed at least three times: every pass got its own request ids.
    assert stats.answered >= 60 and stats.failed == 0, stats.errors
    assert {key.split("/")[1] for key in stats.by_version} == {"stable", "canary"}
    assert stats.feedback_sent == stats.answered
    predictions = _logged(gateway.inference_log_url, replay.prefix, stats.answered)
    assert predictions["request_id"].is_unique
    assert set(predictions["deployment"]) == {"replay-canary"}


def test_rows_the_model_refuses_fail_loudly_and_get_no_label(
    gateway: GatewayServer, april: pd.DataFrame
) -> None:
    bad = april.head(5).astype({"hour": str})
    bad["hour"] = "ten"
    replay = Replay(gateway.url, bad, features=FEATURES, label="delayed", rate=100, feedback_delay_s=0)
    stats = replay.run()

    assert (stats.sent, stats.answered, stats.failed, stats.feedback_sent) == (5, 0, 5, 0)
    assert "HTTP 422" in stats.errors[0] and "'hour'" in stats.errors[0]
    time.sleep(6)  # longer than the gateway's log flush interval
    assert _logged(gateway.inference_log_url, replay.prefix, 0).empty


def test_bad_replays_are_refused_before_sending(gateway: GatewayServer, april: pd.DataFrame) -> None:
    with pytest.raises(ReplayError, match=r"lack feature column\(s\) \['visib'\]"):
        Replay(gateway.url, april.drop(columns="visib"), features=FEATURES)
    with pytest.raises(ReplayError, match="no label column 'arrived_late'"):
        Replay(gateway.url, april, features=FEATURES, label="arrived_late")
    with pytest.raises(ReplayError, match="nothing to replay"):
        Replay(gateway.url, april.head(0), features=FEATURES)
    with pytest.raises(ReplayError, match=r"gateway at http://127.0.0.1:\d+ is unreachable"):
        Replay(f"http://127.0.0.1:{free_port()}", april, features=FEATURES).run()
