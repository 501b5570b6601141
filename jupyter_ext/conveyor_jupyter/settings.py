"""Where Conveyor's services live and how to log in, for the server extension and the magics.

Both read the same environment variables so a kernel started by the Jupyter server (which
inherits its environment) talks to the same Airflow and MLflow as the side panel. The password
is kept out of ``repr`` and out of every payload we return, because reprs end up in notebooks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_AIRFLOW_URL = "CONVEYOR_AIRFLOW_URL"
ENV_AIRFLOW_USERNAME = "CONVEYOR_AIRFLOW_USERNAME"
ENV_AIRFLOW_PASSWORD = "CONVEYOR_AIRFLOW_PASSWORD"
ENV_MLFLOW_URI = "MLFLOW_TRACKING_URI"
ENV_MLFLOW_UI_URL = "CONVEYOR_MLFLOW_UI_URL"
ENV_KEDRO_PROJECT = "CONVEYOR_KEDRO_PROJECT"


@dataclass(frozen=True)
class ConveyorSettings:
    """Connection settings; ``password`` never appears in ``repr`` or ``public()``."""

    airflow_url: str = "http://127.0.0.1:8080"
    username: str = "admin"
    password: str = field(default="", repr=False)
    mlflow_uri: str = ""
    mlflow_ui_url: str = ""
    kedro_project: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: str) -> ConveyorSettings:
        """Environment first, then explicit overrides (server config traits, ``%conveyor connect``)."""
        env = os.environ if env is None else env
        values = {
            "airflow_url": env.get(ENV_AIRFLOW_URL, cls.airflow_url),
            "username": env.get(ENV_AIRFLOW_USERNAME, cls.username),
            "password": env.get(ENV_AIRFLOW_PASSWORD, ""),
            "mlflow_uri": env.get(ENV_MLFLOW_URI, ""),
            "mlflow_ui_url": env.get(ENV_MLFLOW_UI_URL, ""),
            "kedro_project": env.get(ENV_KEDRO_PROJECT, ""),
        }
        values.update({k: v for k, v in overrides.items() if v})
        values["airflow_url"] = values["airflow_url"].rstrip("/")
        return cls(**values)

    @property
    def default_model(self) -> str | None:
        """The model of the configured Kedro project (``model.name`` of its conveyor.yml), so the
        magics need no name in a project's own notebooks; ``None`` when there is none to read."""
        from conveyor.core.contract import CONTRACT_FILE, ContractError, ModelContract

        if not self.kedro_project:
            return None
        path = Path(self.kedro_project) / "conf" / "base" / CONTRACT_FILE
        try:
            return ModelContract.from_file(path).name if path.is_file() else None
        except ContractError:
            return None

    @property
    def mlflow_link_base(self) -> str:
        """The MLflow UI users click through to; the tracking server serves it unless told otherwise."""
        return (self.mlflow_ui_url or self.mlflow_uri).rstrip("/")

    def public(self) -> dict[str, str]:
        """What the browser may see: where things are, never how to log in."""
        return {
            "airflow_url": self.airflow_url,
            "username": self.username,
            "mlflow_uri": self.mlflow_link_base,
            "kedro_project": self.kedro_project,
            "model_name": self.default_model or "",
        }
