"""Project settings: the MLflow tracking hook and where its configuration lives."""

from kedro.config import OmegaConfigLoader

from flight_delays.hooks import MlflowTrackingHook

HOOKS = (MlflowTrackingHook(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # conf/<env>/mlflow.yml: tracking defaults for runs that no orchestrator or server configured.
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
}
