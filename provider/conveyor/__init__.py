"""Conveyor: CI/CD for machine learning on Airflow, Kedro and MLflow."""

__version__ = "0.1.0"
