"""Connection ``conveyor_gateway`` -> a ``GatewayClient`` for the gateway's admin API.

Host/port (or a full URL in host) locate the gateway; the password is the admin token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from conveyor.clients.gateway import GatewayClient


def _settings(conn: Any, conn_id: str) -> tuple[str, str | None]:
    host = (conn.host or "").rstrip("/")
    if not host:
        raise ValueError(f"connection {conn_id!r} has no host (the gateway address)")
    url = host if "://" in host else f"http://{host}"
    if conn.port and url.count(":") == 1:
        url = f"{url}:{conn.port}"
    return url, conn.password or None


class GatewayHook(BaseHook):
    """A Conveyor gateway (``conveyor serve``) from an Airflow connection."""

    conn_name_attr = "gateway_conn_id"
    default_conn_name = "conveyor_gateway_default"
    conn_type = "conveyor_gateway"
    hook_name = "Conveyor gateway"

    def __init__(
        self, gateway_conn_id: str = default_conn_name, timeout: float = 120.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.gateway_conn_id = gateway_conn_id
        self.url, self.token = _settings(self.get_connection(gateway_conn_id), gateway_conn_id)
        self.timeout = timeout

    @classmethod
    async def asettings(cls, gateway_conn_id: str) -> tuple[str, str | None]:
        """``(url, token)`` without blocking, for triggers (the token never goes into trigger kwargs)."""
        return _settings(await cls.aget_connection(gateway_conn_id), gateway_conn_id)

    def get_conn(self) -> GatewayClient:
        from conveyor.clients.gateway import GatewayClient

        return GatewayClient(self.url, self.token, timeout=self.timeout)

    def test_connection(self) -> tuple[bool, str]:
        from conveyor.clients.gateway import GatewayClientError

        try:
            with self.get_conn() as client:
                deployments = client.status()["deployments"]
        except GatewayClientError as exc:
            return False, str(exc)
        return True, f"gateway at {self.url} answered; deployments: {sorted(deployments)}"
