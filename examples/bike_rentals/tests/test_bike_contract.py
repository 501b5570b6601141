"""conf/base/conveyor.yml is a valid contract that names this project's own columns."""

from __future__ import annotations

from bike_frames import CONF

from bike_rentals.schema import LABEL, PREDICTION
from conveyor.core.contract import ModelContract


def test_contract_loads_and_matches_the_schema() -> None:
    contract = ModelContract.from_file(CONF / "conveyor.yml")
    assert (contract.name, contract.task, contract.label) == ("bike_rentals", "regression", LABEL)
    assert contract.outputs.required == [PREDICTION]
    rules = {rule.metric: rule for rule in contract.gate}
    assert rules["rmse"].higher_is_better is False and rules["rmse"].tolerance is not None
    assert rules["r2"].higher_is_better is True and rules["r2"].threshold is not None
    assert (contract.canary.online_metric, contract.canary.higher_is_better) == ("mae", False)
    # the kedro: and airflow: sections come with the integration
    assert dict(contract.extra) == {}
