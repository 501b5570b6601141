"""A registered model whose load fails (its artifact cannot be opened): a bad deploy."""

import mlflow
from mlflow.pyfunc import PythonModel


class UnloadableModel(PythonModel):
    def load_context(self, context):
        with open(context.artifacts["weights"], "rb") as handle:
            if handle.read(4) != b"CONV":
                raise ValueError("weights file is corrupt: bad magic number")

    def predict(self, context, model_input, params=None):
        return model_input.iloc[:, :1]


mlflow.models.set_model(UnloadableModel())
