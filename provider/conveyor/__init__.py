"""Conveyor: CI/CD for machine learning on Airflow, Kedro and MLflow."""

import os

__version__ = "0.1.0"

# Conveyor runs on closed networks: MLflow's usage telemetry (on by default, and deaf to
# DO_NOT_TRACK=1) must not call out. A user who wants it sets the variable to "false".
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
