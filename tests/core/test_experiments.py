"""Experiments that several processes are the first to use (a backfill's runs, Celery workers)."""

from __future__ import annotations

import threading

import pytest
from mlflow import MlflowClient

from conveyor.core.experiments import experiment_id
from conveyor.local.mlflow_server import MlflowServer

pytestmark = pytest.mark.integration


def test_first_users_racing_on_a_new_experiment_all_get_the_one_it_became(
    mlflow_server: MlflowServer,
) -> None:
    for attempt in range(3):
        name = f"race-{attempt}"
        barrier, results = threading.Barrier(4), []

        def first_use(
            name: str = name, barrier: threading.Barrier = barrier, results: list = results
        ) -> None:
            client = MlflowClient(mlflow_server.url)
            barrier.wait()
            try:
                results.append(experiment_id(client, name))
            except Exception as exc:  # the failure the look-then-create race gave
                results.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=first_use) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        created = MlflowClient(mlflow_server.url).get_experiment_by_name(name)
        assert results == [created.experiment_id] * 4, results
