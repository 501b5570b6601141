"""Column names shared by training, the logged model, the gateway and drift monitoring.

They mirror docs/contracts.md; one definition here keeps the pyfunc's signature, the reference
sample and the evaluation set in step.
"""

from __future__ import annotations

CATEGORICAL: tuple[str, ...] = ("carrier", "origin", "dest")
NUMERIC: tuple[str, ...] = (
    "hour",
    "day_of_week",
    "distance",
    "temp",
    "dewp",
    "humid",
    "wind_speed",
    "precip",
    "pressure",
    "visib",
)
FEATURES: tuple[str, ...] = CATEGORICAL + NUMERIC
LABEL = "delayed"
TIME = "time_hour"
TARGET_SOURCE = "arr_delay"
DELAY_THRESHOLD_MINUTES = 15

# Weather columns taken from the hourly weather table; they may be NaN (no observation).
WEATHER: tuple[str, ...] = ("temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib")
WEATHER_KEYS: tuple[str, ...] = ("origin", "year", "month", "day", "hour")
