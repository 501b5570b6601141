"""Run the gateway under uvicorn: one process holds the deployments' state.

One process per gateway on purpose: the slots, weights and rollout state live in memory, and
uvicorn workers would each hold their own copy and disagree. Scale out with more gateways
behind a load balancer, each driven through its admin API.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from conveyor.serving.app import create_app
from conveyor.serving.gateway import Gateway, GatewayConfig, GatewayError

log = logging.getLogger(__name__)


class StartupLoadError(RuntimeError):
    """A startup deployment did not load and ``fail_on_load_error`` was set: the process exits."""


def build(
    config: GatewayConfig,
    deployments: Mapping[str, str],
    tracking_uri: str | None = None,
    *,
    fail_on_load_error: bool = False,
):
    """The ASGI app with ``deployments`` (name -> model URI) loaded into their stable slots at startup.

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
        for name, uri in deployments.items():
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
) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build(config, deployments, tracking_uri, fail_on_load_error=fail_on_load_error)
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
