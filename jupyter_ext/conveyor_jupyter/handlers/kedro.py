"""Local Kedro runs started by ``%conveyor kedro``: state and log, for the renderer and the panel."""

from __future__ import annotations

from tornado import web

from conveyor_jupyter.handlers.base import ConveyorHandler, backend_errors
from conveyor_jupyter.kedro_jobs import KedroJob, jobs_root


class KedroRunHandler(ConveyorHandler):
    @web.authenticated
    @backend_errors
    async def get(self, job_id: str) -> None:
        job = KedroJob(job_id, jobs_root())
        view = job.view(self.conveyor.mlflow_link_base).to_json()
        self.send({**view, "log": job.log(60)})
