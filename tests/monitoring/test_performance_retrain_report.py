"""Performance rules, the retraining request (on a real MLflow server) and the report pictures."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

from conveyor.core.contract import ModelContract
from conveyor.core.drift import DriftConfig, DriftInputError, build_detector
from conveyor.core.drift.performance import check_performance, performance_over_time
from conveyor.core.drift.report import (
    drift_report_html,
    figure_png,
    plot_feature_drift,
    plot_performance_over_time,
)
from conveyor.core.retrain import (
    RETRAIN_REASON_TAG,
    NoRetrainNeeded,
    build_retrain_conf,
    conf_from_results,
    partitions_in_window,
    record_retrain_request,
)
from flight_delays.schema import FEATURES
from tests.support import contracts
from tests.support.models import flight_contract


def _labelled(n: int = 400, noise: float = 0.2, seed: int = 0, days: int = 4) -> pd.DataFrame:
    """Labels and scores where the score ranks labels well (AUC ~0.9) unless ``noise`` is large."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    score = np.clip(label * 0.6 + 0.2 + rng.normal(0, noise, n), 0, 1)
    ts = pd.Timestamp("2013-12-01", tz="UTC") + pd.to_timedelta(
        np.linspace(0, days * 24, n, endpoint=False), unit="h"
    )
    return pd.DataFrame({"label": label, "delay_probability": score, "delayed": (score >= 0.5) * 1, "ts": ts})


# The flight outputs with the gate cut to roc_auc >= 0.6: these tests are about the sensor, not
# about which metrics the demo project's gate happens to judge.
FLIGHTS = dataclasses.replace(
    flight_contract("m"), gate=tuple(r for r in flight_contract("m").gate if r.metric == "roc_auc")
)
ALL = ("roc_auc", "f1", "accuracy")


def test_good_predictions_are_not_degraded() -> None:
    result = check_performance(_labelled(), FLIGHTS, reference={"roc_auc": 0.92}, thresholds={"roc_auc": 0.7})
    assert not result.degraded and result.reasons == []
    assert result.metrics["roc_auc"] > 0.9 and result.n_labelled == 400


def test_below_floor_and_below_reference_are_both_named() -> None:
    noisy = _labelled(noise=1.5)
    result = check_performance(
        noisy,
        FLIGHTS,
        reference={"roc_auc": 0.95, "accuracy": 0.9},
        thresholds={"roc_auc": 0.75},
        metrics=ALL,
    )
    assert result.degraded
    assert any(r.startswith("roc_auc=") and "below the floor 0.7500" in r for r in result.reasons)
    assert any("below the reference 0.9500" in r for r in result.reasons)
    assert json.loads(json.dumps(result.to_dict()))["degraded"] is True


def test_one_class_window_is_not_called_degraded() -> None:
    quiet = _labelled().assign(label=0)
    result = check_performance(quiet, FLIGHTS, reference={"roc_auc": 0.9}, thresholds={"roc_auc": 0.7})
    assert result.metrics["roc_auc"] is None
    assert not any(r.startswith("roc_auc") for r in result.reasons)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame(), "no labelled predictions"),
        (_labelled().drop(columns=["label"]), r"missing column\(s\) \['label'\]"),
        (_labelled().assign(label=2), "labels must be 0/1"),
        (_labelled(n=50), "only 50 labelled predictions"),
    ],
)
def test_unusable_feedback_is_refused(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(DriftInputError, match=message):
        check_performance(frame, FLIGHTS, reference={"roc_auc": 0.9}, min_labelled=100)


def test_nothing_to_compare_with_is_refused_not_read_as_no_decay() -> None:
    with pytest.raises(DriftInputError, match="no reference metrics and no thresholds are set"):
        check_performance(
            _labelled(), FLIGHTS, reference={"accuracy": 0.8}, thresholds={}, metrics=("roc_auc",)
        )
    assert check_performance(_labelled(), FLIGHTS, thresholds={"roc_auc": 0.5}, metrics=("roc_auc",)).metrics
    # By default the gate's own threshold is the bar: roc_auc >= 0.6.
    noisy = check_performance(_labelled(noise=3.0), FLIGHTS)
    assert noisy.thresholds == {"roc_auc": 0.6} and noisy.degraded, noisy.metrics


def test_floor_on_an_unmeasured_metric_is_refused() -> None:
    with pytest.raises(ValueError, match=r"thresholds name metric\(s\) \['log_loss'\]"):
        check_performance(_labelled(), FLIGHTS, thresholds={"log_loss": 0.7})
    with pytest.raises(ValueError, match="is a binary_classification model: its metrics are"):
        check_performance(_labelled(), FLIGHTS, metrics=("rmse",))


def test_a_regressor_decays_when_its_error_rises_above_ceiling_or_reference() -> None:
    contract = ModelContract.from_mapping(contracts.REGRESSION)  # rmse tolerance 2, r2 >= 0.3
    rng = np.random.default_rng(0)
    truth = rng.normal(20, 5, 400)
    ts = pd.Timestamp("2013-12-01", tz="UTC") + pd.to_timedelta(np.arange(400), unit="h")

    def window(noise: float) -> pd.DataFrame:
        return pd.DataFrame({"label": truth, "yhat": truth + rng.normal(0, noise, 400), "ts": ts})

    good = check_performance(window(1.0), contract, reference={"rmse": 1.0, "r2": 0.95}, tolerance=0.5)
    assert not good.degraded and good.positive_rate is None and good.thresholds == {"r2": 0.3}
    bad = check_performance(window(6.0), contract, reference={"rmse": 1.0, "r2": 0.95}, tolerance=0.5)
    assert bad.degraded
    assert any(r.startswith("rmse=") and "above the reference 1.0000" in r for r in bad.reasons)
    assert any(r.startswith("r2=") and "below the floor 0.3000" in r for r in bad.reasons)
    ceiling = check_performance(window(3.0), contract, thresholds={"rmse": 2.0})
    assert ceiling.reasons[0].startswith("rmse=") and "above the ceiling 2.0000" in ceiling.reasons[0]
    assert list(performance_over_time(window(1.0), contract, freq="7D").columns) == [
        "period",
        "n",
        "rmse",
        "r2",
    ]


def test_performance_over_time_and_its_plot() -> None:
    frame = pd.concat(
        [
            _labelled(seed=1, days=2),
            _labelled(noise=1.0, seed=2, days=2).assign(ts=lambda f: f["ts"] + pd.Timedelta(days=2)),
        ]
    )
    timeline = performance_over_time(frame, FLIGHTS, freq="1D", metrics=ALL)
    assert list(timeline.columns) == ["period", "n", "roc_auc", "f1", "accuracy"]
    assert len(timeline) == 4 and timeline["n"].sum() == 800
    assert timeline["roc_auc"].iloc[0] > timeline["roc_auc"].iloc[-1] + 0.2
    png = figure_png(plot_performance_over_time(timeline, {"roc_auc": 0.9}, {"roc_auc": 0.7}))
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_feature_drift_plot_and_html(flights: Callable[[str], pd.DataFrame]) -> None:
    reference = flights("2013-01..2013-03")[list(FEATURES)].sample(5000, random_state=0)
    detector = build_detector(reference, DriftConfig(backend="scipy"))
    window = flights("2013-07").sample(2000, random_state=0)
    result = detector.check(window)
    fig = plot_feature_drift(detector, window, result)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 13
    titles = {ax.get_title().split(" — ")[0]: ax.title.get_color() for ax in visible}
    assert titles["temp"] == "tab:red" and titles["hour"] == "black"
    png = figure_png(fig)
    page = drift_report_html(result, png, "data drift: flight_delays v1")
    assert page.startswith("<!doctype html>") and "<b>DRIFT</b>" in page
    assert page.count("<tr") == 14 and 'class="drift"><td>temp</td>' in page
    assert "data:image/png;base64," in page


def test_partitions_in_window() -> None:
    assert partitions_in_window("2013-03-28T00:00:00Z", "2013-05-01T00:00:00Z") == ["2013-03", "2013-04"]
    assert partitions_in_window("2011-01-30T12:00", "2011-02-01T00:00", "%Y-%m-%d") == [
        "2011-01-30",
        "2011-01-31",
    ]
    assert partitions_in_window("2011-01-01T22:30", "2011-01-02T00:00", "%Y%m%d-%H") == [
        "20110101-22",
        "20110101-23",
    ]
    assert partitions_in_window("2012-11-05", "2013-02-01", "%Y") == ["2012", "2013"]
    assert partitions_in_window("2013-12-30", "2014-01-06", "%G-W%V") == ["2014-W01"]
    with pytest.raises(ValueError, match="names no date or time field"):
        partitions_in_window("2013-05-01", "2013-05-02", "batch")
    with pytest.raises(ValueError, match="empty window"):
        partitions_in_window("2013-05-01", "2013-05-01")


def _fired(kind: str, start: str, end: str, decision: bool = True) -> dict:
    return {
        "kind": kind,
        "decision": decision,
        "reason": f"{kind} in temp" if decision else None,
        "window": {"start": start, "end": end},
        "model_name": "flight_delays",
        "model_version": "3",
        "mlflow_run_id": f"run-{kind}",
    }


def test_conf_names_reason_window_partitions_and_caller() -> None:
    conf = conf_from_results(
        [
            _fired("data_drift", "2013-04-01T00:00:00+00:00", "2013-04-08T00:00:00+00:00"),
            _fired("performance", "2013-03-25T00:00:00+00:00", "2013-04-08T00:00:00+00:00"),
            None,
        ],
        triggered_by="ml_monitor/manual__1",
    )
    assert conf["reason"] == "data_drift in temp; performance in temp"
    assert conf["window"] == {"start": "2013-03-25T00:00:00+00:00", "end": "2013-04-08T00:00:00+00:00"}
    assert conf["partitions"] == "2013-03,2013-04" and conf["triggered_by"] == "ml_monitor/manual__1"
    assert conf["details"]["monitor_runs"] == ["run-data_drift", "run-performance"]
    assert json.loads(json.dumps(conf)) == conf


def test_nothing_fired_means_no_retraining() -> None:
    quiet = _fired("data_drift", "2013-02-01", "2013-02-08", decision=False)
    with pytest.raises(NoRetrainNeeded):
        conf_from_results([quiet, None], triggered_by="ml_monitor")


def test_conf_needs_a_reason_and_a_caller() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        build_retrain_conf(reason=" ", window_start="2013-04-01", window_end="2013-04-02", triggered_by="x")
    with pytest.raises(ValueError, match="needs triggered_by"):
        build_retrain_conf(
            reason="drift", window_start="2013-04-01", window_end="2013-04-02", triggered_by=""
        )


def test_retrain_request_is_recorded_in_mlflow(mlflow_uri: str, flight_model: dict[str, str]) -> None:
    conf = build_retrain_conf(
        reason="data drift in temp, dewp",
        window_start="2013-04-01T00:00:00+00:00",
        window_end="2013-04-08T00:00:00+00:00",
        triggered_by="ml_monitor/test",
        partitions=["2013-04", "2013-03"],
        model_name=flight_model["name"],
        model_version=flight_model["version"],
    )
    assert conf["partitions"] == "2013-03,2013-04"
    client = MlflowClient(mlflow_uri)
    run_id = record_retrain_request(client, conf)
    run = client.get_run(run_id)
    assert run.data.tags[RETRAIN_REASON_TAG] == "data drift in temp, dewp"
    assert run.data.tags["conveyor.monitor.kind"] == "retrain_request"
    tags = client.get_model_version(flight_model["name"], flight_model["version"]).tags
    assert (
        tags[RETRAIN_REASON_TAG] == "data drift in temp, dewp"
        and tags["conveyor.retrain.monitor_run_id"] == run_id
    )


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),
    st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=400)),
    st.sampled_from(["%Y-%m", "%Y-%m-%d", "%Y-%m-%dT%H", "%Y"]),
)
def test_partitions_in_window_name_every_hour_of_the_window_and_nothing_else(
    start: datetime, length: timedelta, fmt: str
) -> None:
    names = partitions_in_window(start, start + length, fmt)
    last = start + length - timedelta(microseconds=1)
    hours = pd.date_range(pd.Timestamp(start).floor("h"), last, freq="h")
    assert names == sorted(set(names)) == sorted({t.strftime(fmt) for t in [*hours, pd.Timestamp(start)]})
