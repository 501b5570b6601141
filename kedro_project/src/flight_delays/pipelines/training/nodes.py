from __future__ import annotations

from typing import Any

import pandas as pd

from flight_delays.classifier import FlightDelayClassifier
from flight_delays.training import train_classifier


def train_model(
    train: pd.DataFrame, validation: pd.DataFrame, params: dict[str, Any]
) -> tuple[FlightDelayClassifier, list[dict[str, float]]]:
    return train_classifier(train, validation, params)
