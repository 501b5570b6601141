"""Airflow hooks: turn connections into the clients and settings ``conveyor.core`` takes as arguments."""
