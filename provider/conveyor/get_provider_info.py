"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

Kept as plain literals (no imports): Airflow calls this while discovering providers, before any
DAG runs. To add a hook, operator, sensor or trigger, append its module to the matching list; to
add a connection type, append one entry to ``connection-types``. ``package-name`` must stay equal
to the distribution name, or Airflow's provider discovery fails for the whole installation.
"""

INTEGRATION = "Conveyor"


def get_provider_info() -> dict:
    return {
        "package-name": "conveyor-ml",
        "name": "Conveyor",
        "description": "CI/CD for machine learning: data and model gates, MLflow promotion, "
        "progressive deployment and drift monitoring.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://github.com/conveyor-ml/conveyor",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["conveyor.hooks.mlflow", "conveyor.hooks.kedro", "conveyor.hooks.gateway"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "conveyor.operators.kedro",
                    "conveyor.operators.validation",
                    "conveyor.operators.gate",
                    "conveyor.operators.registry",
                    "conveyor.operators.deploy",
                    "conveyor.operators.retrain",
                    "conveyor.operators.staging",
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["conveyor.sensors.drift"]}],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["conveyor.triggers.rollout", "conveyor.triggers.inference_log"],
            }
        ],
        "extra-links": [
            "conveyor.links.mlflow.MlflowRunLink",
            "conveyor.links.mlflow.MlflowModelVersionLink",
        ],
        "connection-types": [
            {
                "connection-type": "conveyor_mlflow",
                "hook-class-name": "conveyor.hooks.mlflow.MlflowHook",
                "hook-name": "Conveyor MLflow",
                "conn-fields": {
                    "registry_uri": {
                        "label": "Registry URI",
                        "description": "Model registry, when it is not the tracking server",
                        "schema": {"type": ["string", "null"], "format": "url"},
                    },
                    "token": {
                        "label": "Token",
                        "description": "Bearer token (MLFLOW_TRACKING_TOKEN)",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "ui_url": {
                        "label": "UI URL",
                        "description": "Address browsers use for extra links, if workers use another one",
                        "schema": {"type": ["string", "null"], "format": "url"},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {"host": "Tracking URI", "login": "Username"},
                    "placeholders": {"host": "http://mlflow:5000", "login": "optional"},
                },
            },
            {
                "connection-type": "conveyor_gateway",
                "hook-class-name": "conveyor.hooks.gateway.GatewayHook",
                "hook-name": "Conveyor gateway",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "extra"],
                    "relabeling": {"host": "Gateway host or URL", "password": "Admin token"},
                    "placeholders": {"host": "http://gateway", "port": "8080"},
                },
            },
            {
                "connection-type": "conveyor_kedro",
                "hook-class-name": "conveyor.hooks.kedro.KedroHook",
                "hook-name": "Conveyor Kedro project",
                "conn-fields": {
                    "project_path": {
                        "label": "Project path",
                        "description": "Folder of the Kedro project (holds pyproject.toml)",
                        "schema": {"type": "string", "minLength": 1},
                    },
                    "env": {"label": "Kedro env", "schema": {"type": ["string", "null"]}},
                    "conf_source": {
                        "label": "Conf source",
                        "description": "Configuration folder or archive outside the project",
                        "schema": {"type": ["string", "null"]},
                    },
                    "python_bin": {
                        "label": "Python interpreter",
                        "description": "Interpreter of a separate environment for subprocess runs",
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "login", "password", "extra"],
                },
            },
        ],
    }
