"""A registered model whose every prediction raises: a canary or shadow that breaks at runtime."""

import mlflow
from mlflow.pyfunc import PythonModel


class FailingModel(PythonModel):
    def predict(self, context, model_input, params=None):
        raise RuntimeError("this model version is broken at prediction time")


mlflow.models.set_model(FailingModel())
