"""Shared behaviour of the Conveyor API handlers: JSON in and out, and errors a user can act on.

Each failure of a backend becomes a JSON error whose ``message`` says which service failed and
why (unreachable, login refused, unknown DAG, bad conf), so the panel can show it verbatim
instead of a generic "500".
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from jupyter_server.base.handlers import APIHandler

from conveyor_jupyter.settings import ConveyorSettings


class ConveyorHandler(APIHandler):
    @property
    def conveyor(self) -> ConveyorSettings:
        return self.settings["conveyor_settings"]

    @property
    def airflow(self) -> Any:
        """The server's one ``AsyncAirflowClient`` (its JWT is shared by all browser sessions)."""
        return self.settings["conveyor_airflow"]

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, default=str))

    def fail(self, status: int, message: str, reason: str) -> None:
        self.log.warning("conveyor: %s", message)
        self.set_status(status)
        self.finish(json.dumps({"message": message, "reason": reason}))

    def json_body(self) -> dict[str, Any]:
        body = self.get_json_body() or {}
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        return body


class BadRequest(ValueError):
    """The browser sent something we refuse before calling any backend."""


def backend_errors(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Map backend exceptions to HTTP statuses with the backend's own explanation."""

    @wraps(method)
    async def wrapper(self: ConveyorHandler, *args: Any, **kwargs: Any) -> None:
        from conveyor.clients.airflow import (
            AirflowAuthError,
            AirflowError,
            AirflowNotFoundError,
            AirflowRequestError,
            AirflowUnreachableError,
        )
        from conveyor_jupyter.conf import ConfError
        from conveyor_jupyter.kedro_jobs import KedroJobError
        from conveyor_jupyter.registry import RegistryError

        try:
            await method(self, *args, **kwargs)
        except AirflowUnreachableError as exc:
            self.fail(503, str(exc), "airflow_unreachable")
        except AirflowAuthError as exc:
            self.fail(502, str(exc), "airflow_login_rejected")
        except AirflowNotFoundError as exc:
            self.fail(404, str(exc), "not_found")
        except AirflowRequestError as exc:
            self.fail(400, str(exc), "airflow_rejected")
        except AirflowError as exc:
            self.fail(502, str(exc), "airflow_error")
        except (ConfError, BadRequest, KedroJobError) as exc:
            self.fail(400, str(exc), "bad_request")
        except RegistryError as exc:
            status = 404 if "no registered model" in str(exc) or "no drift report" in str(exc) else 502
            self.fail(status, str(exc), "mlflow")

    return wrapper
