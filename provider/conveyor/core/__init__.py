"""The logic of Conveyor, free of Airflow, Jupyter and the gateway.

A notebook, a Kedro hook and an Airflow task call the same functions from here, and every
setting arrives as an argument: nothing in ``core`` reads the environment.
"""
