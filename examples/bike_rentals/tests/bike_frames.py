"""Hourly rows in the raw schema of the bike-sharing table, made here: deterministic, calendar-true,
and with demand that depends on the hour, the kind of day and the temperature (so a model can
learn it), passing the project's GX suite unless a test breaks them on purpose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bike_rentals.schema import CATEGORIES, TIMESTAMP

PROJECT = Path(__file__).parents[1]
CONF = PROJECT / "conf" / "base"

_WEATHER = CATEGORIES["weathersit"]
# Commuter peaks on working days, a midday hump otherwise; riders per hour at full temperature.
_WORKDAY = np.array(
    [5, 3, 2, 1, 1, 8, 40, 150, 260, 140, 80, 90, 110, 105, 95, 110, 180, 330, 300, 200, 140, 100, 70, 35]
)
_WEEKEND = np.array(
    [30, 22, 16, 8, 3, 3, 8, 20, 50, 90, 140, 180, 210, 220, 215, 205, 190, 170, 140, 110, 85, 65, 50, 40]
)


def _season(stamp: pd.Timestamp) -> int:
    """1 winter .. 4 fall, changing on the 21st of March, June, September and December."""
    quarter_start = (stamp.month % 12) // 3  # Dec-Feb 0, Mar-May 1, Jun-Aug 2, Sep-Nov 3
    shifted = stamp.month in (3, 6, 9, 12) and stamp.day < 21
    return (quarter_start - 1) % 4 + 1 if shifted else quarter_start + 1


def make_hours(
    start: str = "2011-02-01", days: int = 28, seed: int = 0, holidays: tuple[str, ...] = ()
) -> pd.DataFrame:
    """``days`` x 24 hourly rows from ``start``, columns as the loader gives them."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(start, periods=days * 24, freq="h")
    weekday = ((stamps.dayofweek + 1) % 7).to_numpy()
    holiday = np.isin(stamps.strftime("%Y-%m-%d"), holidays).astype(np.int64)
    workingday = ((weekday >= 1) & (weekday <= 5) & (holiday == 0)).astype(np.int64)
    hour = stamps.hour.to_numpy()
    temp = np.clip(
        0.3 + 0.25 * np.sin((stamps.dayofyear.to_numpy() - 100) / 58.0) + rng.normal(0, 0.05, len(stamps)),
        0.02,
        0.98,
    )
    weather = rng.choice(len(_WEATHER) - 1, size=len(stamps), p=[0.65, 0.25, 0.10])
    profile = np.where(workingday == 1, _WORKDAY[hour], _WEEKEND[hour])
    demand = profile * (0.4 + temp) * np.where(weather == 2, 0.5, 1.0)
    bikers = np.maximum(1, np.round(demand * rng.lognormal(0, 0.15, len(stamps)))).astype(np.int64)
    casual = np.round(bikers * np.where(workingday == 1, 0.15, 0.4)).astype(np.int64)
    return pd.DataFrame(
        {
            TIMESTAMP: stamps.strftime("%Y-%m-%dT%H:%M:%S"),
            "season": np.array([_season(s) for s in stamps], dtype=np.int64),
            "mnth": [CATEGORIES["mnth"][m - 1] for m in stamps.month],
            "day": stamps.dayofyear.to_numpy().astype(np.int64),
            "hr": hour.astype(np.int64),
            "holiday": holiday,
            "weekday": weekday.astype(np.int64),
            "workingday": workingday,
            "weathersit": [_WEATHER[w] for w in weather],
            "temp": np.round(temp, 2),
            "atemp": np.round(np.clip(temp * 0.95, 0, 1), 4),
            "hum": np.round(rng.uniform(0.3, 0.95, len(stamps)), 2),
            "windspeed": np.round(rng.uniform(0.0, 0.5, len(stamps)), 4),
            "casual": casual,
            "registered": bikers - casual,
            "bikers": bikers,
        }
    )
