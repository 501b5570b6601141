"""``make demo`` / ``conveyor demo`` / ``python -m conveyor.demo``: the whole Conveyor loop, unattended.

PostgreSQL, Airflow, MLflow, the gateway, Prometheus and a Pushgateway start under ``var/demo``;
``ml_ci`` trains, ``ml_cd`` deploys, real April flights flow through the gateway, ``ml_monitor``
finds the drift and asks for a retrain, the new model canaries in; on the way a candidate trained on
shuffled labels is stopped by the gate and one with a mis-set decision threshold by the canary
analysis. The services stay up for exploration
(``make down`` stops them).

The steps live in small modules: ``stack`` (services), ``traffic`` (the replayed flights),
``airflow_runs`` (following DAG runs through the REST API), ``loop`` (the story), ``report``
(progress lines and the summary table), ``run`` (the command line).
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point shared by ``make demo``, ``conveyor demo`` and ``python -m conveyor.demo``."""
    from conveyor.demo.run import main as run_main

    return run_main(argv)
