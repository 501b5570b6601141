"""The classifier learns a planted signal, keeps its preprocessing, and survives odd serving input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flight_frames import make_flights, make_weather
from sklearn.metrics import roc_auc_score

from flight_delays.classifier import FlightDelayClassifier
from flight_delays.data import join_weather
from flight_delays.evaluation import evaluate_classifier
from flight_delays.features import build_features, split_by_time
from flight_delays.schema import FEATURES, LABEL
from flight_delays.training import train_classifier

PARAMS = {
    "seed": 0,
    "embedding_dim": 4,
    "hidden_units": [16],
    "dropout": 0.0,
    "batch_size": 64,
    "learning_rate": 0.02,
    "weight_decay": 0.0,
    "max_epochs": 30,
    "patience": 4,
    "num_threads": 1,
    "decision_threshold": 0.5,
}


@pytest.fixture(scope="module")
def splits():
    flights = make_flights(rows=1500)
    return split_by_time(build_features(join_weather(flights, make_weather(flights))), 0.2, 0.2)


@pytest.fixture(scope="module")
def trained(splits):
    return train_classifier(splits.train, splits.validation, PARAMS)


def test_learns_the_planted_signal_and_stops_early(splits, trained) -> None:
    model, history = trained
    proba = model.predict_proba(splits.test)
    assert roc_auc_score(splits.test[LABEL], proba) > 0.95
    assert len(history) < PARAMS["max_epochs"]  # early stopping kicked in
    assert {"epoch", "train_loss", "val_loss", "val_auc"} <= set(history[0])


def test_training_is_deterministic(splits, trained) -> None:
    again, _ = train_classifier(splits.train, splits.validation, PARAMS)
    np.testing.assert_allclose(again.predict_proba(splits.test), trained[0].predict_proba(splits.test))


def test_unseen_categories_and_missing_weather_still_predict(trained) -> None:
    model, _ = trained
    unseen = {"carrier": "ZZ", "origin": "EWR", "dest": "NOWHERE", "hour": 18, "day_of_week": 2}
    known = {"carrier": "UA", "origin": "JFK", "dest": "LAX", "hour": 6, "day_of_week": 2}
    row = pd.DataFrame([{**unseen, "distance": 500.0}, {**known, "distance": 2400.0}]).assign(
        **{c: np.nan for c in FEATURES[6:]}
    )
    proba = model.predict_proba(row)
    assert proba.shape == (2,) and np.all((proba >= 0) & (proba <= 1))
    assert proba[0] > proba[1]  # evening EWR is the delayed pattern


def test_saved_state_reloads_to_identical_predictions(tmp_path: Path, splits, trained) -> None:
    model, _ = trained
    model.save(tmp_path / "state.pt")
    loaded = FlightDelayClassifier.load(tmp_path / "state.pt")
    np.testing.assert_array_equal(loaded.predict_proba(splits.test), model.predict_proba(splits.test))


def test_one_class_training_data_is_refused(splits) -> None:
    one_class = splits.train.assign(**{LABEL: 0})
    with pytest.raises(ValueError, match="only one class"):
        train_classifier(one_class, splits.validation, PARAMS)


def test_evaluation_metrics_and_too_small_eval_set(splits, trained) -> None:
    model, _ = trained
    scores, roc_fig, cm_fig = evaluate_classifier(model, splits.test, min_rows=10)
    assert set(scores) >= {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert scores["roc_auc"] > 0.95 and scores["rows"] == len(splits.test)
    assert roc_fig.axes[0].get_title().startswith("ROC") and cm_fig.axes[0].get_title().startswith(
        "Confusion"
    )
    with pytest.raises(ValueError, match="fewer than min_eval_rows=1000"):
        evaluate_classifier(model, splits.test, min_rows=1000)
