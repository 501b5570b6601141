"""The Jupyter Server extension: the side panel's only way to Airflow and MLflow.

Credentials live here (server config or environment) and never reach the browser; the browser
talks to ``<base_url>/conveyor/...`` with its Jupyter session, and this process logs in to Airflow
with a JWT that the shared client renews.
"""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode

from conveyor_jupyter.handlers import HANDLERS
from conveyor_jupyter.settings import ConveyorSettings


class ConveyorExtension(ExtensionApp):
    """``c.ConveyorExtension.airflow_url = ...`` etc.; unset traits fall back to the environment."""

    name = "conveyor_jupyter"
    handlers = HANDLERS

    airflow_url = Unicode("", config=True, help="Airflow api-server URL (env CONVEYOR_AIRFLOW_URL)")
    airflow_username = Unicode("", config=True, help="Airflow user (env CONVEYOR_AIRFLOW_USERNAME)")
    airflow_password = Unicode("", config=True, help="Airflow password (env CONVEYOR_AIRFLOW_PASSWORD)")
    mlflow_tracking_uri = Unicode("", config=True, help="MLflow tracking server (env MLFLOW_TRACKING_URI)")
    mlflow_ui_url = Unicode("", config=True, help="MLflow UI URL for links, if not the tracking URI")
    kedro_project = Unicode("", config=True, help="Kedro project for local runs (env CONVEYOR_KEDRO_PROJECT)")

    def initialize_settings(self) -> None:
        from conveyor.clients.airflow import AsyncAirflowClient

        settings = ConveyorSettings.from_env(
            airflow_url=self.airflow_url,
            username=self.airflow_username,
            password=self.airflow_password,
            mlflow_uri=self.mlflow_tracking_uri,
            mlflow_ui_url=self.mlflow_ui_url,
            kedro_project=self.kedro_project,
        )
        self.log.info(
            "Conveyor: Airflow at %s (user %s), MLflow at %s",
            settings.airflow_url,
            settings.username,
            settings.mlflow_uri or "(not set)",
        )
        self.settings.update(
            {
                "conveyor_settings": settings,
                "conveyor_airflow": AsyncAirflowClient(
                    settings.airflow_url, settings.username, settings.password
                ),
            }
        )

    async def stop_extension(self) -> None:
        client = self.settings.get("conveyor_airflow")
        if client is not None:
            await client.aclose()
