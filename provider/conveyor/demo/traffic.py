"""The demo's live traffic: real flights of one month, as the gateway would receive them.

The flights come from the Kedro project's own loading and feature code, so a replayed request
holds exactly the columns and types the model was trained on, and its label (``delayed``) is
the real outcome of that flight.
"""

from __future__ import annotations

import pandas as pd


def flights_traffic(month: str, max_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Raw features, ``delayed`` and ``time_hour`` of ``month``'s flights, in departure order.

    ``max_rows`` samples evenly over the month (not its first days), so a short replay still
    carries the month's weather: the drift the monitor should find.
    """
    from flight_delays.data import flights_by_month, join_weather, read_table, select_months
    from flight_delays.features import build_features
    from flight_delays.schema import TIME

    rows = build_features(join_weather(select_months(flights_by_month(), month), read_table("weather")))
    if max_rows is not None and len(rows) > max_rows:
        rows = rows.sample(n=max_rows, random_state=seed)
    return rows.sort_values(TIME, kind="stable").reset_index(drop=True)


def feature_columns() -> tuple[str, ...]:
    from flight_delays.schema import FEATURES

    return FEATURES
