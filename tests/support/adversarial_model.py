"""A registered model that misbehaves in the way its ``model_config["fault"]`` names.

Logged as models-from-code by ``tests.support.models.register_adversarial_model``; one file for
every fault so each adversarial candidate differs from a sane one in exactly one respect.
"""

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

SCORE, LABEL = "delay_probability", "delayed"


class AdversarialModel(PythonModel):
    def load_context(self, context):
        self.fault = context.model_config["fault"]
        if self.fault == "raise_on_load":
            raise ValueError("weights file is corrupt: bad magic number")

    def predict(self, context, model_input, params=None):
        rows = len(model_input)
        # A plausible probability per row, so only the fault differs from a servable model.
        score = np.linspace(0.05, 0.95, rows) if rows else np.zeros(0)
        if self.fault == "raise_on_predict":
            raise RuntimeError("this model version is broken at prediction time")
        if self.fault == "wrong_columns":
            return pd.DataFrame({"score": score, "label": (score >= 0.5).astype(int)})
        if self.fault == "no_label_column":
            return pd.DataFrame({SCORE: score})
        if self.fault == "too_few_rows":
            score = score[: max(rows - 1, 0)]
        elif self.fault == "flat_array":
            return score
        elif self.fault == "out_of_range":
            score = score * 3 - 1
        elif self.fault == "nan":
            score = np.where(np.arange(len(score)) % 7 == 0, np.nan, score)
        elif self.fault != "none":
            raise ValueError(f"unknown fault {self.fault!r}")
        return pd.DataFrame({SCORE: score, LABEL: (np.nan_to_num(score) >= 0.5).astype(int)})


mlflow.models.set_model(AdversarialModel())
