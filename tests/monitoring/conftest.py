"""Real flight data, a real registered model and a real inference log for the monitoring tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pandas as pd
import pytest

from conveyor.local.mlflow_server import MlflowServer

WINTER = "2013-01..2013-03"
REFERENCE_ROWS = 20_000


@pytest.fixture(scope="session")
def flights() -> Callable[[str], pd.DataFrame]:
    """Model-input rows (features, ``delayed``, ``time_hour``) of a month spec, built once per spec."""
    from flight_delays.data import flights_by_month, join_weather, read_table, select_months
    from flight_delays.features import build_features

    cache: dict[str, pd.DataFrame] = {}

    def load(spec: str) -> pd.DataFrame:
        if spec not in cache:
            months = select_months(flights_by_month(), spec)
            cache[spec] = build_features(join_weather(months, read_table("weather")))
        return cache[spec]

    return load


@pytest.fixture(scope="session")
def winter_split(flights: Callable[[str], pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A January-March reference sample of the model's inputs (as a training run logs it, minus the
    label the model store drops) and the same-season rows it does not contain."""
    from flight_delays.schema import FEATURES

    winter = flights(WINTER)
    reference = winter[list(FEATURES)].sample(REFERENCE_ROWS, random_state=0)
    return reference, winter.drop(reference.index)


@pytest.fixture(scope="session")
def flight_model(mlflow_server: MlflowServer) -> dict[str, str]:
    """A real model trained on January-March and registered with its reference sample."""
    from tests.support.models import register_flight_model

    name = f"monitoring-{uuid.uuid4().hex[:6]}"
    version = register_flight_model(
        mlflow_server.url, name, months=("2013-01", "2013-02", "2013-03"), max_rows=4000
    )
    return {"name": name, "version": str(version.version), "run_id": version.run_id}
