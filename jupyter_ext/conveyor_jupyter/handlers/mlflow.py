"""Models (versions, aliases, gate, lineage) and drift reports, read from MLflow in a worker thread.

MLflow's client blocks; ``asyncio.to_thread`` keeps the Jupyter server answering other requests
while the registry is slow or down.
"""

from __future__ import annotations

import asyncio

from tornado import web

from conveyor_jupyter import registry
from conveyor_jupyter.handlers.base import BadRequest, ConveyorHandler, backend_errors


class ModelHandler(ConveyorHandler):
    @web.authenticated
    @backend_errors
    async def get(self, name: str) -> None:
        summary = await asyncio.to_thread(registry.model_summary, self.conveyor.mlflow_uri, name)
        self.send({**summary, "mlflow_url": self.conveyor.mlflow_link_base})


class DriftHandler(ConveyorHandler):
    @web.authenticated
    @backend_errors
    async def get(self, name: str) -> None:
        self.send(await asyncio.to_thread(registry.drift_summary, self.conveyor.mlflow_uri, name))


class ArtifactHandler(ConveyorHandler):
    """GET ``?path=drift/x.png``: a PNG artifact of a run, for the drift view's plot."""

    @web.authenticated
    @backend_errors
    async def get(self, run_id: str) -> None:
        path = self.get_query_argument("path", "")
        if not path.endswith(".png") or ".." in path.split("/"):
            raise BadRequest("only .png artifacts inside the run can be fetched")
        try:
            data = await asyncio.to_thread(registry.artifact_bytes, self.conveyor.mlflow_uri, run_id, path)
        except OSError as exc:
            raise BadRequest(f"artifact {path!r} of run {run_id}: {exc}") from None
        self.set_header("Content-Type", "image/png")
        self.finish(data)
