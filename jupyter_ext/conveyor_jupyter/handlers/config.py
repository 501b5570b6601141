"""Where the server extension points, and whether it can reach Airflow with its login."""

from __future__ import annotations

from tornado import web

from conveyor_jupyter.handlers.base import ConveyorHandler, backend_errors


class ConfigHandler(ConveyorHandler):
    """GET: public settings (never the password) and a live Airflow check, for the panel header."""

    @web.authenticated
    @backend_errors
    async def get(self) -> None:
        version = await self.airflow.version()
        self.send({**self.conveyor.public(), "airflow_version": version.get("version")})
