"""Node of ``training``: a thin call into ``bike_rentals.training``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bike_rentals.regressor import DemandRegressor
from bike_rentals.training import TrainingConfig, fit_regressor


def train_model(
    train: pd.DataFrame, validation: pd.DataFrame, params: dict[str, Any]
) -> tuple[DemandRegressor, list[dict[str, float]]]:
    return fit_regressor(train, validation, TrainingConfig.from_params(params))
