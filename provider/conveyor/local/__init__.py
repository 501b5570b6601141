"""Local services (MLflow server, PostgreSQL, Airflow) started by ``make demo`` and test fixtures.

Both use the same code so that what the tests exercise is what a user runs on their laptop.
"""
