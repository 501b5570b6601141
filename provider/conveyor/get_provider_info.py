"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""


def get_provider_info() -> dict:
    return {
        "package-name": "conveyor-ml",
        "name": "Conveyor",
        "description": "CI/CD for machine learning: data and model gates, MLflow promotion, "
        "progressive deployment and drift monitoring.",
        "versions": ["0.1.0"],
    }
