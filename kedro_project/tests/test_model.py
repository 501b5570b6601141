"""The classifier learns a planted signal, keeps its preprocessing, and survives odd serving input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flight_frames import make_flights, make_weather
from sklearn.metrics import f1_score, roc_auc_score

from flight_delays.classifier import FlightDelayClassifier
from flight_delays.data import join_weather
from flight_delays.evaluation import evaluate_classifier
from flight_delays.features import build_features, split_by_time
from flight_delays.mlflow_model import FlightDelayModel
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
    "positive_weight": "balanced",
    "threshold": {"objective": "f1"},
    "decision_threshold": None,
    "shuffle_labels": False,
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


def test_the_threshold_is_chosen_on_validation_saved_and_served(tmp_path: Path, splits, trained) -> None:
    model, _ = trained
    validation = model.predict_proba(splits.validation)
    labels = splits.validation[LABEL].to_numpy()
    best = max(f1_score(labels, validation >= t) for t in np.unique(validation))
    assert f1_score(labels, validation >= model.threshold) == pytest.approx(best)
    assert model.threshold_rule == "highest F1 on the validation split"
    model.save(tmp_path / "state.pt")
    loaded = FlightDelayClassifier.load(tmp_path / "state.pt")
    assert (loaded.threshold, loaded.threshold_rule) == (model.threshold, model.threshold_rule)
    served = FlightDelayModel()
    served.classifier = loaded
    answers = served.predict(None, splits.test[list(FEATURES)])
    expected = (answers["delay_probability"] >= model.threshold).astype(int)
    assert (answers["delayed"] == expected).all() and 0 < answers["delayed"].mean() < 1


def test_a_state_saved_before_thresholds_were_chosen_keeps_its_configured_one(
    tmp_path: Path, trained
) -> None:
    state = trained[0].state()
    del state["threshold"], state["threshold_rule"]
    state["config"] = {**state["config"], "decision_threshold": 0.5}
    assert FlightDelayClassifier.from_state(state).threshold == 0.5


def test_a_fixed_threshold_overrides_the_choice_and_keeps_the_weights(splits, trained) -> None:
    fixed, _ = train_classifier(splits.train, splits.validation, {**PARAMS, "decision_threshold": 0.01})
    assert (fixed.threshold, fixed.threshold_rule) == (0.01, "fixed by training.decision_threshold")
    np.testing.assert_allclose(fixed.predict_proba(splits.test), trained[0].predict_proba(splits.test))


def test_balanced_weight_trains_on_the_minority_yet_serves_real_probabilities(splits) -> None:
    # Make delays rare (about 1 in 6), where the weight matters.
    rare = [
        frame[(frame[LABEL] == 0) | (frame.index % 3 == 0)] for frame in (splits.train, splits.validation)
    ]
    model, _ = train_classifier(*rare, PARAMS)
    proba = model.predict_proba(rare[0])
    # The weight's shift of the logit is taken out: probabilities average to the real delay rate.
    assert proba.mean() == pytest.approx(rare[0][LABEL].mean(), abs=0.05)


def test_shuffled_labels_give_a_model_without_skill(splits, trained) -> None:
    shuffled, _ = train_classifier(splits.train, splits.validation, {**PARAMS, "shuffle_labels": 1})
    test_labels = splits.test[LABEL]
    assert roc_auc_score(test_labels, shuffled.predict_proba(splits.test)) < 0.65
    assert roc_auc_score(test_labels, trained[0].predict_proba(splits.test)) > 0.95


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"positive_weight": 0}, "positive_weight must be 'balanced' or a number above 0, got int"),
        ({"positive_weight": "auto"}, "positive_weight must be 'balanced' or a number above 0, got str"),
        ({"shuffle_labels": "yes"}, r"shuffle_labels must be true or false \(or 1/0\), got str"),
        ({"shuffle_labels": 2}, "shuffle_labels must be true or false"),
        ({"decision_threshold": 1.5}, r"decision_threshold must be in \[0, 1\], got 1.5"),
        (
            {"threshold": {"objective": "accuracy"}},
            "objective must be one of f1, balanced_accuracy, precision, recall",
        ),
    ],
)
def test_bad_settings_are_refused_by_name_before_training(splits, override, message) -> None:
    with pytest.raises(ValueError, match=message):
        train_classifier(splits.train.head(0), splits.validation, {**PARAMS, **override})
