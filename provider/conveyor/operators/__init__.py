"""Airflow operators: thin wrappers that turn connections and context into ``conveyor.core`` calls.

Import them from their modules (``conveyor.operators.gate`` etc.); each keeps heavy libraries
(mlflow, pandas, GX, Kedro) inside ``execute`` so DAG files parse fast.
"""
