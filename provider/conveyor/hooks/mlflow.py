"""Connection ``conveyor_mlflow`` → an ``MlflowClient`` that ``conveyor.core`` functions take."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlflow import MlflowClient


class MlflowUnreachableError(ConnectionError):
    """The tracking server did not answer; the message names the URI so the fix is obvious."""


class MlflowHook(BaseHook):
    """MLflow tracking server and model registry from an Airflow connection.

    Host is the tracking URI (``http://mlflow:5000``; a bare host gets ``http://`` and the port).
    Login/password become ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` and the ``token`` extra
    ``MLFLOW_TRACKING_TOKEN``: MLflow's client reads credentials only from the environment, and a
    task runs in its own process, so setting them there reaches no other task. Extras:
    ``registry_uri`` (defaults to the tracking URI), ``ui_url`` (what browsers use for extra
    links, when it differs from the URI workers use), ``connect_timeout`` (seconds, default 5).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "conveyor_mlflow"
    hook_name = "Conveyor MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        conn = self.get_connection(mlflow_conn_id)
        self._conn = conn
        extra = conn.extra_dejson
        self.tracking_uri = self._uri_from(conn.host or "", conn.port, conn.schema)
        if not self.tracking_uri:
            raise ValueError(f"connection {mlflow_conn_id!r} has no host (the MLflow tracking URI)")
        self.registry_uri: str = extra.get("registry_uri") or self.tracking_uri
        self.ui_url: str = (extra.get("ui_url") or self.tracking_uri).rstrip("/")
        self.connect_timeout = float(extra.get("connect_timeout") or 5)

    @staticmethod
    def _uri_from(host: str, port: int | None, schema: str | None) -> str:
        if "://" in host:
            parts = urlsplit(host)
            if port and parts.port is None and parts.scheme in ("http", "https"):
                host = parts._replace(netloc=f"{parts.netloc}:{port}").geturl()
            return host.rstrip("/")
        if not host:
            return ""
        uri = f"http://{host}" + (f":{port}" if port else "")
        return uri + (f"/{schema.strip('/')}" if schema else "")

    def _export_credentials(self) -> None:
        conn = self._conn
        token = conn.extra_dejson.get("token")
        if conn.login:
            os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login
            os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password or ""
        if token:
            os.environ["MLFLOW_TRACKING_TOKEN"] = token

    def check_reachable(self) -> None:
        """Fail in seconds, naming the URI, instead of inside MLflow's minutes-long retry loop."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return
        url = f"{self.tracking_uri}/health"
        where = f"MLflow server at {self.tracking_uri} (connection {self.mlflow_conn_id!r})"
        try:
            urllib.request.urlopen(url, timeout=self.connect_timeout).close()
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:  # 4xx (e.g. auth on /health) still proves the server is there
                raise MlflowUnreachableError(f"{where} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise MlflowUnreachableError(f"{where} is unreachable: {getattr(exc, 'reason', exc)}") from exc

    def get_conn(self) -> MlflowClient:
        """A client bound to this connection's URIs, after checking the server answers."""
        from mlflow import MlflowClient

        self._export_credentials()
        self.check_reachable()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def run_url(self, run_id: str, experiment_id: str | None = None) -> str:
        if experiment_id:
            return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"{self.ui_url}/#/runs/{run_id}"

    def model_version_url(self, name: str, version: str) -> str:
        return f"{self.ui_url}/#/models/{name}/versions/{version}"

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.check_reachable()
        except MlflowUnreachableError as exc:
            return False, str(exc)
        return True, f"MLflow server at {self.tracking_uri} answered"
