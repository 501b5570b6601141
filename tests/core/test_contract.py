"""The model contract: the demo's file loads, every malformed field is named, tags round-trip."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.core.contract import ContractError, ModelContract
from tests.support import contracts

DEMO = Path(__file__).resolve().parents[2] / "kedro_project" / "conf" / "base" / "conveyor.yml"
REGRESSION, MULTICLASS = contracts.REGRESSION, contracts.MULTICLASS


def test_the_demo_contract_loads_with_its_defaults() -> None:
    contract = ModelContract.from_file(DEMO)
    assert (contract.name, contract.task, contract.label) == (
        "flight_delays",
        "binary_classification",
        "delayed",
    )
    assert contract.outputs.required == ["delay_probability", "delayed"]
    assert [(r.metric, r.higher_is_better, r.threshold, r.tolerance) for r in contract.gate] == [
        ("roc_auc", True, 0.6, 0.01),
        ("f1", True, 0.15, 0.1),
        ("log_loss", False, 0.69, 0.01),
    ]
    assert contract.report == ("decision_threshold",)
    # Stored with each version: the report travels in the tag, as the rules do.
    assert ModelContract.from_tag(contract.to_tag()).report == ("decision_threshold",)
    assert (contract.canary.online_metric, contract.canary.higher_is_better) == ("balanced_accuracy", True)


def test_each_task_gets_its_own_online_metric_and_directions() -> None:
    regression = ModelContract.from_mapping(REGRESSION)
    assert (regression.canary.online_metric, regression.canary.higher_is_better) == ("mae", False)
    assert {r.metric: r.higher_is_better for r in regression.gate} == {"rmse": False, "r2": True}
    multiclass = ModelContract.from_mapping(MULTICLASS)
    assert multiclass.outputs.required == ["p_top", "cls", "p0", "p1", "p2"]
    assert multiclass.canary.online_metric == "accuracy"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("model", "scroe"), "x", "unknown key model.scroe"),
        (("model", "task"), "ranking", "model.task 'ranking' is not one of"),
        (("model", "name"), "flight delays", "model.name 'flight delays' must start with a letter"),
        (("model", "label"), "", "model.label must be a non-empty string"),
        (("model", "outputs", "score"), 3, "model.outputs.score must be a non-empty string, got int"),
        (("model", "outputs", "score"), "delayed", "decision and model.outputs.score are the same column"),
        (
            ("gate", "metrics"),
            {"rmse": {"tolerance": 1}},
            "gate.metrics.rmse does not fit binary_classification",
        ),
        (("gate", "metrics"), {}, "gate.metrics needs at least one metric"),
        (("gate", "metrics", "roc_auc"), {}, "gate.metrics.roc_auc sets neither threshold nor tolerance"),
        (("gate", "metrics", "roc_auc", "tolerance"), -0.1, "tolerance must be >= 0"),
        (("gate", "metrics", "roc_auc", "threshold"), float("nan"), "threshold must be a finite number"),
        (("gate", "metrics", "roc_auc", "threshold"), True, "threshold must be a finite number, got bool"),
        (("gate", "report"), "decision_threshold", "gate.report must be a list, got str"),
        (("gate", "report"), ["a", "a"], "gate.report repeats a name"),
        (("gate", "report"), [""], "gate.report[0] must be a non-empty string"),
        (("gate", "reprot"), [], "unknown key gate.reprot"),
        (
            ("canary",),
            {"online_metric": "mae"},
            "canary.online_metric 'mae' does not fit binary_classification",
        ),
        (
            ("model", "classes"),
            ["a", "b", "c"],
            "binary classifier's score is the positive class's probability",
        ),
    ],
)
def test_a_bad_field_is_named(path: tuple[str, ...], value: Any, message: str) -> None:
    data = ModelContract.from_file(DEMO).to_dict()
    target = data
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    with pytest.raises(ContractError, match=r"conveyor\.yml: ") as caught:
        ModelContract.from_mapping(data)
    assert message in str(caught.value)


def test_task_specific_outputs_are_required() -> None:
    no_probabilities = copy.deepcopy(MULTICLASS)
    no_probabilities["model"]["outputs"]["probabilities"] = ["p0", "p1"]
    with pytest.raises(ContractError, match=r"one column per class in model\.classes"):
        ModelContract.from_mapping(no_probabilities)
    decided = copy.deepcopy(REGRESSION)
    decided["model"]["outputs"]["decision"] = "bucket"
    with pytest.raises(ContractError, match="a regression model has no classes"):
        ModelContract.from_mapping(decided)
    label_is_score = copy.deepcopy(REGRESSION)
    label_is_score["model"]["label"] = "yhat"
    with pytest.raises(ContractError, match="truth and the prediction would be confused"):
        ModelContract.from_mapping(label_is_score)


def test_a_file_that_is_not_a_contract_says_so(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="no such file; `conveyor init` writes one"):
        ModelContract.from_file(tmp_path / "conveyor.yml")
    broken = tmp_path / "conveyor.yml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ContractError, match="not valid YAML"):
        ModelContract.from_file(broken)
    broken.write_text("- a list\n")
    with pytest.raises(ContractError, match="must be a mapping, got list"):
        ModelContract.from_file(broken)


def test_project_sections_are_kept_but_never_stored_with_a_version() -> None:
    data = {**REGRESSION, "kedro": {"model_dataset": "regressor"}, "airflow": {"schedule": None}}
    with pytest.raises(ContractError, match="unknown key airflow, kedro"):
        ModelContract.from_mapping(data, extra_sections=())
    with pytest.raises(ContractError, match="unknown key serving"):
        ModelContract.from_mapping({**REGRESSION, "serving": {}})
    contract = ModelContract.from_mapping(data)
    assert contract.extra == {"kedro": {"model_dataset": "regressor"}, "airflow": {"schedule": None}}
    assert ModelContract.from_mapping(contract.to_dict()) == contract
    assert ModelContract.from_tag(contract.to_tag()) == dataclasses.replace(contract, extra={})


@pytest.mark.parametrize("data", [REGRESSION, MULTICLASS], ids=["regression", "multiclass"])
def test_a_contract_round_trips_through_its_version_tag(data: dict[str, Any]) -> None:
    contract = ModelContract.from_mapping(data)
    tag = contract.to_tag()
    assert len(tag) < 5000
    assert ModelContract.from_tag(tag) == contract
    with pytest.raises(ContractError, match=r"tag conveyor\.contract is not JSON"):
        ModelContract.from_tag(tag[:-1])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_paths = st.lists(
    st.sampled_from(
        ["model", "gate", "canary", "outputs", "metrics", "roc_auc", "rmse", "score", "task", "label"]
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from([REGRESSION, MULTICLASS]), path=_paths, value=_json)
def test_any_edit_gives_a_contract_that_round_trips_or_a_contract_error(
    base: dict[str, Any], path: list[str], value: Any
) -> None:
    """Whatever lands in the file, loading ends in one of two ways: a ContractError, or a valid
    contract that survives the trip through its tag unchanged (no other exception, nothing lost)."""
    data = copy.deepcopy(base)
    target = data
    for key in path[:-1]:
        nxt = target.get(key) if isinstance(target, dict) else None
        if not isinstance(nxt, dict):
            nxt = {}
            target[key] = nxt
        target = nxt
    target[path[-1]] = value
    try:
        contract = ModelContract.from_mapping(data)
    except ContractError as exc:
        assert str(exc).startswith("conveyor.yml")
        return
    assert ModelContract.from_tag(contract.to_tag()) == contract
    assert contract.outputs.score in contract.outputs.required


@settings(max_examples=200, deadline=None)
@given(data=_json)
def test_arbitrary_documents_are_refused_with_a_contract_error(data: Any) -> None:
    with pytest.raises(ContractError):
        ModelContract.from_mapping(data)
