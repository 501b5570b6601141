"""A small Kedro project written from scratch, as a team's own project would be: its own nodes,
its own pyfunc logger, no Conveyor code in ``settings.py``. The plugin tests point the
``kedro:`` section of its ``conveyor.yml`` at its outputs and break one piece at a time.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

PACKAGE = "toy_rides"

PYPROJECT = f"""
[tool.kedro]
package_name = "{PACKAGE}"
project_name = "toy-rides"
kedro_init_version = "1.7.0"
source_dir = "src"
"""

NODES = '''
"""Rides per hour from temperature and hour of day: least squares, served through pyfunc."""

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

FEATURES = ["temp", "hour"]


def make_rides(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"temp": rng.normal(15, 8, rows), "hour": rng.integers(0, 24, rows)})
    frame["rides"] = 3 * frame["temp"] + 2 * frame["hour"] + rng.normal(0, 2, rows)
    frame["note"] = "bookkeeping column the model does not read"
    return frame


def split(rides: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    cut = int(len(rides) * 0.7)
    train, held_out = rides.iloc[:cut], rides.iloc[cut:].reset_index(drop=True)
    return train, held_out, train.sample(n=min(200, len(train)), random_state=0)


def fit(train: pd.DataFrame) -> list[float]:
    x = np.column_stack([train[FEATURES].to_numpy(float), np.ones(len(train))])
    return np.linalg.lstsq(x, train["rides"].to_numpy(float), rcond=None)[0].tolist()


def evaluate(weights: list[float], held_out: pd.DataFrame) -> dict[str, float]:
    predicted = held_out[FEATURES].to_numpy(float) @ np.array(weights[:2]) + weights[2]
    return {"rmse": float(np.sqrt(np.mean((predicted - held_out["rides"]) ** 2)))}


class RidesModel(mlflow.pyfunc.PythonModel):
    def __init__(self, weights, column):
        self.weights, self.column = weights, column

    def predict(self, context, model_input, params=None):
        x = model_input[FEATURES].to_numpy(float)
        return pd.DataFrame({self.column: x @ np.array(self.weights[:2]) + self.weights[2]})


def log_model(weights: list[float], eval_set: pd.DataFrame, column: str = "predicted_rides"):
    model = RidesModel(weights, column)
    example = eval_set[FEATURES].head(5)
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=model,
        signature=infer_signature(example, model.predict(None, example)),
        pip_requirements=["mlflow", "numpy", "pandas"],
    )


def log_mislabelled_model(weights: list[float], eval_set: pd.DataFrame):
    return log_model(weights, eval_set, column="rides_forecast")
'''

PIPELINES = """
from kedro.pipeline import Node, Pipeline

from toy_rides import nodes


def register_pipelines():
    pipeline = Pipeline(
        [
            Node(nodes.make_rides, ["params:rows", "params:seed"], "rides", name="make_rides"),
            Node(nodes.split, "rides", ["train", "held_out", "reference"], name="split"),
            Node(nodes.fit, "train", "weights", name="fit"),
            Node(nodes.evaluate, ["weights", "held_out"], "metrics", name="evaluate"),
        ]
    )
    return {"__default__": pipeline}
"""

CONTRACT = {
    "model": {
        "name": "toy_rides",
        "task": "regression",
        "label": "rides",
        "outputs": {"score": "predicted_rides"},
    },
    "gate": {"metrics": {"rmse": {"threshold": 10.0}}},
    "kedro": {
        "model": "weights",
        "log_model": f"{PACKAGE}.nodes:log_model",
        "metrics": "metrics",
        "eval_set": "held_out",
        "reference_sample": "reference",
    },
}


def write_project(root: Path) -> Path:
    """The project under ``root``, without a conveyor.yml (tests write the one they need)."""
    package = root / "src" / PACKAGE
    package.mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text("")
    (package / "nodes.py").write_text(NODES)
    (package / "pipeline_registry.py").write_text(PIPELINES)
    for env in ("base", "local"):
        (root / "conf" / env).mkdir(parents=True)
    (root / "conf" / "base" / "parameters.yml").write_text("rows: 600\nseed: 0\n")
    write_catalog(root, {})
    return root


def write_catalog(root: Path, entries: dict) -> None:
    """Every dataset is in memory unless a test declares it (Kedro needs the file regardless)."""
    (root / "conf" / "base" / "catalog.yml").write_text(yaml.safe_dump(entries))


def write_contract(root: Path, contract: dict) -> None:
    (root / "conf" / "base" / "conveyor.yml").write_text(yaml.safe_dump(contract, sort_keys=False))
