"""Project settings. Conveyor's Kedro plugin needs no entry here: it is discovered through the
``kedro.hooks`` entry point and reads ``conf/<env>/conveyor.yml`` itself."""

import os

from kedro.config import OmegaConfigLoader

# MLflow 3 reports usage to the internet unless told not to (DO_NOT_TRACK only counts when it
# is "true"); Kedro's own telemetry is off through .telemetry. A user may still opt in.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {"base_env": "base", "default_run_env": "local"}
