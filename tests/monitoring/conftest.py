"""Real flight data, a real registered model and a real inference log for the monitoring tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from conveyor.local.mlflow_server import MlflowServer

WINTER = "2013-01..2013-03"
REFERENCE_ROWS = 20_000
WINDOW_ROWS = 5_000


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
    """A January-March reference sample and the same-season rows it does not contain."""
    winter = flights(WINTER)
    reference = winter.sample(REFERENCE_ROWS, random_state=0)
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


@pytest.fixture
def mlflow_conn(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``mlflow_default`` connection the sensors use, pointing at the session server."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "conveyor_mlflow", "host": mlflow_uri})
    )
    return mlflow_uri


def log_predictions(
    url: str | Path, rows: pd.DataFrame, model: object, version: str, ts: pd.Series | pd.Timestamp
) -> pd.DataFrame:
    """Score ``rows`` with the real model and write them to the inference log as the gateway would."""
    from conveyor.core import inference_log
    from flight_delays.schema import FEATURES

    features = rows[list(FEATURES)].reset_index(drop=True)
    scored = model.predict(features)
    records = features.assign(
        request_id=[uuid.uuid4().hex for _ in range(len(features))],
        ts=ts if isinstance(ts, pd.Timestamp) else pd.to_datetime(ts, utc=True).to_numpy(),
        deployment="flight_delays",
        slot="stable",
        model_name="flight_delays",
        model_version=str(version),
        delay_probability=scored["delay_probability"].to_numpy(),
        delayed=scored["delayed"].to_numpy(),
    )
    inference_log.write_partitioned(str(url), inference_log.PREDICTIONS, records)
    return records
