"""The ``kedro:`` section parser: strict on every field, and never anything but a ``ContractError``
naming the field for input it refuses (Hypothesis generates what people mistype)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.core.contract import ContractError, ModelContract
from conveyor.kedro.config import FIELDS, KedroSection, kedro_section
from tests.kedro.toy_project import CONTRACT


def _parse(kedro: Any) -> KedroSection | None:
    body = copy.deepcopy(CONTRACT)
    body["kedro"] = kedro
    return kedro_section(ModelContract.from_mapping(body), "conveyor.yml")


def test_defaults_follow_the_model() -> None:
    section = _parse(CONTRACT["kedro"])
    assert section is not None
    assert (section.experiment, section.alias, section.tracking_uri) == (
        "toy_rides",
        "challenger",
        "sqlite:///mlflow.db",
    )
    assert section.datasets() == {
        "model": "weights",
        "metrics": "metrics",
        "eval_set": "held_out",
        "reference_sample": "reference",
    }


def test_no_section_is_none() -> None:
    body = copy.deepcopy(CONTRACT)
    del body["kedro"]
    assert kedro_section(ModelContract.from_mapping(body), "conveyor.yml") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": None}, "kedro.model must be a non-empty string"),
        ({"eval_set": "has space"}, "kedro.eval_set 'has space' is not a catalog dataset name"),
        ({"log_model": "no_colon"}, "kedro.log_model 'no_colon' must be \"package.module:function\""),
        ({"figures": "one"}, "kedro.figures must be a list"),
        ({"figures": ["a", 3]}, "kedro.figures[1] must be a non-empty string"),
        ({"data_gate": ["rides"]}, "kedro.data_gate must be a mapping"),
        ({"alias": "v3"}, "reserved by MLflow"),
        ({"reference_sample": "held_out"}, "'held_out' is named for two different outputs"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ContractError) as err:
        _parse({**CONTRACT["kedro"], **change})
    assert message in str(err.value)


def test_a_missing_required_field_is_named() -> None:
    kedro = dict(CONTRACT["kedro"])
    del kedro["reference_sample"]
    with pytest.raises(ContractError, match=r"kedro\.reference_sample is required"):
        _parse(kedro)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.lists(st.text(max_size=10), max_size=3),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), _values, max_size=8),
    st.booleans(),
)
def test_any_section_parses_or_is_refused_with_a_contract_error(changes: dict[str, Any], base: bool) -> None:
    kedro = {**CONTRACT["kedro"], **changes} if base else changes
    try:
        section = _parse(kedro)
    except ContractError as exc:
        assert str(exc).startswith("conveyor.yml")
        return
    assert section is not None
    # Whatever was accepted is what the file said, and every name is a usable catalog name.
    assert all(name and " " not in name for name in section.datasets().values())
    for field in ("model", "metrics", "eval_set", "reference_sample"):
        assert getattr(section, field) == kedro[field]
