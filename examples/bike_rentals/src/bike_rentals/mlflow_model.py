"""The servable MLflow model: the trained ``DemandRegressor`` behind ``mlflow.pyfunc``.

``mlflow.pyfunc.load_model(uri).predict(rows)`` takes the raw input columns of ``schema.INPUTS``
and returns one column, ``predicted_bikers`` (the contract's score). The package's source travels
with the model (``code_paths``), so a server without this project installed still loads it.
"""

from __future__ import annotations

import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, Schema

from bike_rentals.regressor import DemandRegressor
from bike_rentals.schema import INPUTS, INTEGER_INPUTS, PREDICTION, TEXT_INPUTS

_WEIGHTS = "regressor"
# What loading and running the model imports; this project itself travels as code.
_SERVING_DISTRIBUTIONS = ("mlflow", "torch", "numpy", "pandas")


def _input_type(column: str) -> str:
    if column in TEXT_INPUTS:
        return "string"
    return "long" if column in INTEGER_INPUTS else "double"


SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(_input_type(c), c) for c in INPUTS]),
    outputs=Schema([ColSpec("double", PREDICTION)]),
)


class BikeDemandModel(mlflow.pyfunc.PythonModel):
    """Loads the saved regressor once per process; ``predict`` only transforms and runs it."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.regressor = DemandRegressor.load(Path(context.artifacts[_WEIGHTS]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return pd.DataFrame({PREDICTION: self.regressor.predict(model_input)})


def pip_requirements() -> list[str]:
    """The installed versions, declared: letting MLflow infer them would load the model in a
    subprocess on every log. A local build label (``2.13.0+cpu``) is not a pip version."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in _SERVING_DISTRIBUTIONS]


def log_bike_model(model: DemandRegressor, input_example: pd.DataFrame, name: str = "model") -> ModelInfo:
    """Log ``model`` on the active MLflow run with its signature and five example rows."""
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "regressor.pt"
        model.save(weights)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=BikeDemandModel(),
            artifacts={_WEIGHTS: str(weights)},
            code_paths=[str(Path(__file__).parent)],
            signature=SIGNATURE,
            input_example=input_example[list(INPUTS)].head(5),
            pip_requirements=pip_requirements(),
        )
