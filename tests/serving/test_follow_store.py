"""A replica following the store while its own admin calls write to it: a real in-process gateway
on a SQLite store, with the store read held at the moment that matters."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from conveyor.serving.gateway import Gateway, GatewayConfig
from tests.serving.conftest import ServingModels

pytestmark = pytest.mark.integration


async def test_a_deployment_created_while_the_store_is_read_is_not_dropped(
    tmp_path: Path, mlflow_uri: str, serving_models: ServingModels
) -> None:
    """The poll that began before ``deploy_slot`` wrote does not list the new deployment; it
    used to take that for a deletion by another replica and drop it, so infra validation's
    first request got 404 "no deployment exists yet" until the next poll."""
    gateway = Gateway(
        GatewayConfig(admin_token="t", store_url=f"sqlite:///{tmp_path / 'state.db'}", poll_interval_s=0.05)
    )
    real = gateway.store.generations
    read, created, next_read, release = (threading.Event() for _ in range(4))
    calls = 0

    def held_read() -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            seen = real()  # read before the deployment exists ...
            read.set()
            created.wait(60)  # ... and answered after it was created on this replica
            return seen
        next_read.set()  # the stale poll is over: what it dropped is dropped by now
        release.wait(60)
        return real()

    await gateway.start()
    try:
        gateway.store.generations = held_read  # type: ignore[method-assign]
        assert await asyncio.to_thread(read.wait, 60)
        await gateway.deploy_slot("race", "stable", serving_models.good)
        assert "race" in gateway.deployments
        created.set()
        assert await asyncio.to_thread(next_read.wait, 60)
        assert "race" in gateway.deployments, "the stale poll dropped a deployment it never saw"
        assert (
            gateway.deployments["race"].slots["stable"].model.version == serving_models.good.rsplit("/", 1)[1]
        )
    finally:
        created.set()
        release.set()
        await gateway.close()
