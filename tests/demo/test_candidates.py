"""The demo's candidates get the verdicts its story tells, from the project's own training and the
contract's gate: shuffled labels are refused, the mis-set threshold passes the gate and loses
the canary's online metric, and the model retrained after the drift keeps it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from conveyor.core.gate import decide, rules_from_contract
from conveyor.core.scoring import checked_outputs, online_aggregate, online_value, score_outputs
from conveyor.dags import build_dags
from conveyor.demo.loop import Settings
from conveyor.demo.traffic import flights_traffic
from flight_delays.mlflow_model import FlightDelayModel
from flight_delays.schema import FEATURES, LABEL
from tests.support.models import PROJECT, flight_contract, project_parameters

DEMO = PROJECT / "conf" / "base" / "conveyor.yml"
S = Settings()


@pytest.fixture(scope="module")
def demo_split() -> Any:
    from flight_delays.data import flights_by_month, join_weather, read_table, select_months
    from flight_delays.features import build_features, split_by_time

    split = project_parameters()["data_processing"]
    rows = build_features(
        join_weather(select_months(flights_by_month(), S.train_partitions), read_table("weather"))
    )
    return split_by_time(
        rows, split["validation_fraction"], split["test_fraction"], S.max_rows, split["seed"]
    )


def _train(demo_split: Any, **override: Any) -> FlightDelayModel:
    from flight_delays.training import train_classifier

    params = {**project_parameters()["training"], "max_epochs": S.max_epochs, **override}
    served = FlightDelayModel()
    served.classifier, _ = train_classifier(demo_split.train, demo_split.validation, params)
    return served


def _scores(model: FlightDelayModel, frame: pd.DataFrame) -> dict[str, float]:
    contract = flight_contract("flight_delays")
    outputs = checked_outputs(contract, model.predict(None, frame[list(FEATURES)]), len(frame))
    return score_outputs(contract, frame[LABEL], outputs)


def _online(model: FlightDelayModel, frame: pd.DataFrame) -> float:
    """The contract's online metric on labelled traffic, as the canary computes it."""
    metric = flight_contract("flight_delays").canary.online_metric
    decided = model.predict(None, frame[list(FEATURES)])["delayed"]
    shares = [online_value(metric, d, t) for d, t in zip(decided, frame[LABEL], strict=True)]
    value = online_aggregate(metric, shares)
    assert value is not None
    return value


def test_every_field_the_demo_sends_is_on_the_ml_ci_form() -> None:
    form = set(build_dags(DEMO)["ml_ci"].params)
    assert {"partitions", "max_rows", "max_epochs", "shuffle_labels", "decision_threshold"} <= form


def test_the_gate_refuses_shuffled_labels_and_passes_the_mis_set_threshold(demo_split: Any) -> None:
    rules = rules_from_contract(flight_contract("flight_delays"))
    champion = _train(demo_split)
    held_out = demo_split.test
    baseline = _scores(champion, held_out)

    shuffled = decide(
        rules, _scores(_train(demo_split, shuffle_labels=1), held_out), baseline, model_name="m"
    )
    assert shuffled.status == "rejected"
    assert {c.metric for c in shuffled.checks if not c.passed} >= {"roc_auc", "log_loss"}

    mis_set = _train(demo_split, decision_threshold=S.bad_threshold)
    assert mis_set.classifier.threshold == S.bad_threshold != champion.classifier.threshold
    passed = decide(rules, _scores(mis_set, held_out), baseline, model_name="m")
    assert passed.status == "passed", passed.render_table()

    # The canary's view: April traffic; flagging every flight is chance on balanced accuracy.
    april = flights_traffic(S.traffic_month, max_rows=2000)
    allowed = flight_contract("flight_delays").canary.max_degradation
    assert _online(mis_set, april) == 0.5
    assert _online(champion, april) - _online(mis_set, april) > allowed


def test_the_model_retrained_on_the_drifted_month_is_not_worse_online_than_the_champion(
    demo_split: Any,
) -> None:
    """The demo's last step: retrained on April (ml_monitor's request), judged on May traffic
    against the champion of January-March. Its threshold is chosen on April's last days, which
    had far more delays than the rest; the objective must not turn that into flagging every
    flight (the F1-best threshold did: 0.05, online accuracy 0.22 against 0.74)."""
    from flight_delays.data import flights_by_month, join_weather, read_table, select_months
    from flight_delays.features import build_features, split_by_time

    split = project_parameters()["data_processing"]
    april = build_features(
        join_weather(select_months(flights_by_month(), S.traffic_month), read_table("weather"))
    )
    retrain_split = split_by_time(
        april, split["validation_fraction"], split["test_fraction"], S.max_rows, split["seed"]
    )
    champion, retrained = _train(demo_split), _train(retrain_split)
    may = flights_traffic(S.next_month, max_rows=2000)
    allowed = flight_contract("flight_delays").canary.max_degradation
    assert _online(retrained, may) >= _online(champion, may) - allowed / 2
