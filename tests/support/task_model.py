"""A linear model of any task, for tests of the contract-driven paths (logged as models-from-code).

``model_config``: ``task`` (``regression`` or ``multiclass_classification``), ``weights`` (one
row per output: one for a regressor, one per class), ``bias``. Its columns are those of
``tests.support.contracts``: ``yhat``; or ``p0..p2``, the decided class ``cls`` and ``p_top``.
"""

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

FEATURES = ["x1", "x2"]


class LinearTaskModel(PythonModel):
    def load_context(self, context):
        self.task = context.model_config["task"]
        self.weights = np.asarray(context.model_config["weights"], dtype=float)
        self.bias = np.asarray(context.model_config["bias"], dtype=float)

    def predict(self, context, model_input, params=None):
        scores = model_input[FEATURES].to_numpy(dtype=float) @ self.weights.T + self.bias
        if self.task == "regression":
            return pd.DataFrame({"yhat": scores[:, 0]})
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        proba = exp / exp.sum(axis=1, keepdims=True)
        out = pd.DataFrame({f"p{k}": proba[:, k] for k in range(proba.shape[1])})
        return out.assign(cls=proba.argmax(axis=1), p_top=proba.max(axis=1))


mlflow.models.set_model(LinearTaskModel())
