"""Project settings: the MLflow tracking hook and where its configuration lives."""

import os

from kedro.config import OmegaConfigLoader

from flight_delays.hooks import MlflowTrackingHook

# MLflow 3 reports usage to the internet unless told not to (DO_NOT_TRACK only counts when it
# is "true"); Kedro's own telemetry is off through .telemetry. A user may still opt in.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

HOOKS = (MlflowTrackingHook(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # conf/<env>/mlflow.yml: tracking defaults for runs that no orchestrator or server configured.
    # conf/<env>/conveyor.yml: the model contract Conveyor stores with every registered version.
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"], "conveyor": ["conveyor*"]},
}
