"""Run the gateway under uvicorn, and the rollout controller beside it or on its own.

One process per replica: what it serves comes from the state store, and uvicorn workers would
each hold their own loaded copies. Scale out with more replicas on one PostgreSQL store behind
a load balancer, and one ``conveyor controller`` (``run_controller``) driving their rollouts.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping

from conveyor.serving.app import create_app
from conveyor.serving.controller import RolloutController
from conveyor.serving.gateway import Gateway, GatewayConfig, GatewayError
from conveyor.serving.store import StateStore

log = logging.getLogger(__name__)


class StartupLoadError(RuntimeError):
    """A startup deployment did not load and ``fail_on_load_error`` was set: the process exits."""


def build(
    config: GatewayConfig,
    deployments: Mapping[str, str],
    tracking_uri: str | None = None,
    *,
    fail_on_load_error: bool = False,
    controller: bool = True,
):
    """The ASGI app with ``deployments`` (name -> model URI) loaded into their stable slots at startup.

    A deployment the store already holds keeps what the store says (a restart resumes it,
    rollout included): ``deployments`` only creates the missing ones. With ``controller`` the
    process also drives rollouts (the one-process default); replicas of a shared store leave that
    to one ``conveyor controller``.

    A deployment that fails to load is logged and the others keep serving (production: one bad
    version must not take the healthy ones down). With ``fail_on_load_error`` the first load
    error ends the startup instead, so the process exits at once with that error: what a sandbox
    that exists only to load one version (infra validation) needs.
    """
    if tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    gateway = Gateway(config)

    async def startup(gw: Gateway) -> None:
        await gw.start(controller=controller)
        for name, uri in deployments.items():
            if name in gw.deployments:
                log.info("deployment %s: serving what the store holds; --deploy %s not applied", name, uri)
                continue
            try:
                await gw.deploy_slot(name, "stable", uri)
            except GatewayError as exc:
                log.error("deployment %s: %s", name, exc)
                if fail_on_load_error:
                    raise StartupLoadError(f"deployment {name}: {exc}") from None

    return create_app(gateway, startup)


def serve(
    config: GatewayConfig,
    deployments: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    tracking_uri: str | None = None,
    fail_on_load_error: bool = False,
    controller: bool = True,
) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build(
        config, deployments, tracking_uri, fail_on_load_error=fail_on_load_error, controller=controller
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=10,
        backlog=4096,
    )


def run_controller(
    store_url: str, tracking_uri: str | None, holder: str | None = None, lease_s: float = 3.0
) -> None:
    """``conveyor controller``: drive every rollout of the store's deployments until SIGTERM.

    Several may run: one leads (it holds the lease), the others stand by and take over within
    ``lease_s`` when it dies.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    store = StateStore(store_url)

    async def main() -> None:
        task = asyncio.ensure_future(RolloutController(store, holder, lease_s=lease_s).run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("controller stopped")

    try:
        asyncio.run(main())
    finally:
        store.close()
