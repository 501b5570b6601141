"""Extra links from Airflow task instances to what the task made in MLflow."""
