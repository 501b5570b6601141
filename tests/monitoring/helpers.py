"""Helpers of the monitoring tests: what the gateway would write to the inference log."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd

WINDOW_ROWS = 5_000


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
