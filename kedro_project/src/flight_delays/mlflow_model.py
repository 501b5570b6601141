"""The servable MLflow model: preprocessing + torch weights behind ``mlflow.pyfunc``.

``mlflow.pyfunc.load_model("models:/flight_delays@challenger").predict(raw_rows)`` takes the raw
feature columns of docs/contracts.md and returns ``delay_probability`` and ``delayed``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, Schema

from flight_delays.classifier import FlightDelayClassifier
from flight_delays.schema import CATEGORICAL, FEATURES, NUMERIC

_STATE_ARTIFACT = "classifier"

SIGNATURE = ModelSignature(
    inputs=Schema(
        [ColSpec("string", c) for c in CATEGORICAL]
        + [ColSpec("long", c) for c in NUMERIC[:2]]
        + [ColSpec("double", c) for c in NUMERIC[2:]]
    ),
    outputs=Schema([ColSpec("double", "delay_probability"), ColSpec("long", "delayed")]),
)


class FlightDelayModel(mlflow.pyfunc.PythonModel):
    """Loads the saved classifier state once; ``predict`` is a thin call into it."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.classifier = FlightDelayClassifier.load(Path(context.artifacts[_STATE_ARTIFACT]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        proba = self.classifier.predict_proba(model_input)
        return pd.DataFrame(
            {"delay_probability": proba, "delayed": (proba >= self.classifier.threshold).astype(np.int64)}
        )


def pip_requirements() -> list[str]:
    """Declared, not inferred: inference would load the model in a subprocess on every log."""
    import torch

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
    ]


def log_flight_model(
    classifier: FlightDelayClassifier, input_example: pd.DataFrame, name: str = "model"
) -> ModelInfo:
    """Log the classifier as a pyfunc model on the active run (signature + input example), and its
    decision threshold as run params: the threshold is a choice of this run, not a setting of
    ``conf/``, and the model gate reports the ``decision_threshold`` param beside its verdict."""
    mlflow.log_params(
        {"decision_threshold": classifier.threshold, "decision_threshold_rule": classifier.threshold_rule}
    )
    with tempfile.TemporaryDirectory() as tmp:
        state_path = Path(tmp) / "classifier.pt"
        classifier.save(state_path)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=FlightDelayModel(),
            artifacts={_STATE_ARTIFACT: str(state_path)},
            signature=SIGNATURE,
            input_example=input_example[list(FEATURES)].head(5),
            pip_requirements=pip_requirements(),
        )
