"""HTTP clients for the services Conveyor drives (Airflow REST API v2, gateway admin API)."""
