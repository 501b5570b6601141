"""conf/base/conveyor.yml is a valid contract that names this project's own columns, and its
``kedro:`` and ``airflow:`` sections name this project's catalog entries and parameters."""

from __future__ import annotations

import inspect
from typing import Any

import yaml
from bike_frames import CONF

from bike_rentals.mlflow_model import log_bike_model
from bike_rentals.schema import LABEL, PREDICTION
from conveyor.core.contract import ModelContract
from conveyor.dags.config import load
from conveyor.kedro.config import kedro_section

CONTRACT = CONF / "conveyor.yml"


def test_contract_loads_and_matches_the_schema() -> None:
    contract = ModelContract.from_file(CONTRACT)
    assert (contract.name, contract.task, contract.label) == ("bike_rentals", "regression", LABEL)
    assert contract.outputs.required == [PREDICTION]
    rules = {rule.metric: rule for rule in contract.gate}
    assert rules["rmse"].higher_is_better is False and rules["rmse"].tolerance is not None
    assert rules["r2"].higher_is_better is True and rules["r2"].threshold is not None
    assert (contract.canary.online_metric, contract.canary.higher_is_better) == ("mae", False)
    assert set(contract.extra) == {"kedro", "airflow"}


def test_the_kedro_section_names_catalog_entries_and_the_model_logger() -> None:
    section = kedro_section(ModelContract.from_file(CONTRACT), str(CONTRACT))
    assert section is not None
    catalog = yaml.safe_load((CONF / "catalog.yml").read_text())
    assert set(section.datasets().values()) <= set(catalog)
    assert section.data_gate == ()  # the pipeline's validate_partition node is the gate
    # The plugin calls it as fn(model, eval_set) and reads the returned ModelInfo.
    assert section.model_logger() is log_bike_model
    assert list(inspect.signature(log_bike_model).parameters)[:2] == ["model", "input_example"]


def test_the_airflow_section_schedules_the_months_of_2011_beside_the_demo(parameters: dict[str, Any]) -> None:
    spec = load(CONTRACT)
    ci, cd, monitor = spec.config.ci, spec.config.cd, spec.config.monitor
    assert spec.prefix and spec.dag_id("ml_ci") == "bike_rentals__ml_ci"
    assert spec.config.connections.kedro == "kedro_bike_rentals"
    assert (ci.start_date.date().isoformat(), ci.end_date.date().isoformat()) == ("2011-01-01", "2011-12-31")
    assert ci.partition.format == "%Y-%m"
    # The Kedro parameters the DAG sets exist in this project's parameters*.yml.
    assert ci.partition.runtime_param == "partitions" and "partitions" in parameters
    assert [(p.name, p.runtime_param) for p in ci.params] == [("max_epochs", "training.max_epochs")]
    assert "max_epochs" in parameters["training"]
    catalog = yaml.safe_load((CONF / "catalog.yml").read_text())
    assert dict(ci.data_gate) == {"bikeshare": "bikeshare_partition_suite"}
    assert {"bikeshare", "bikeshare_partition_suite"} <= set(catalog)
    assert (cd.deployment, cd.strategy) == ("bikes", "canary")
    assert dict(monitor.thresholds) == {"r2": 0.5}  # the gate's floor
    assert dict(monitor.drift) == {"max_unseen_share": 1.0}  # a new month is drift, not bad input
