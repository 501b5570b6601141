"""The REST client against a real Airflow: login, errors a user can act on, both transports."""

from __future__ import annotations

import pytest

from conveyor.clients.airflow import (
    AirflowAuthError,
    AirflowClient,
    AirflowNotFoundError,
    AirflowRequestError,
    AirflowUnreachableError,
    AsyncAirflowClient,
)
from conveyor.local.airflow import LocalAirflow
from conveyor.local.process import free_port


def test_unreachable_airflow_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        AirflowClient(url, "admin", "admin", timeout=2) as client,
        pytest.raises(AirflowUnreachableError) as err,
    ):
        client.list_dags()
    assert url in str(err.value)


def test_wrong_password_is_a_login_error_naming_the_user(airflow: LocalAirflow) -> None:
    with AirflowClient(airflow.url, "admin", "wrong") as client, pytest.raises(AirflowAuthError) as err:
        client.list_dags()
    assert err.value.status == 401
    assert "'admin'" in str(err.value)


def test_unknown_dag_is_not_found_with_airflows_reason(airflow_client: AirflowClient) -> None:
    with pytest.raises(AirflowNotFoundError) as err:
        airflow_client.trigger_dag_run("no_such_dag", {"a": 1})
    assert err.value.status == 404
    assert "no_such_dag" in str(err.value)


def test_invalid_request_reports_the_offending_field(airflow_client: AirflowClient) -> None:
    with pytest.raises(AirflowRequestError) as err:
        airflow_client.trigger_dag_run("no_such_dag", logical_date="the first of March")
    assert err.value.status == 422
    assert "logical_date" in str(err.value)


def test_an_expired_token_is_renewed_transparently(airflow: LocalAirflow) -> None:
    with airflow.client() as client:
        client.list_dags()
        client._http.auth._token = "not-a-valid-jwt"  # what a restarted api-server makes of an old token
        client._http.auth._expires_at = float("inf")
        assert isinstance(client.list_dags(), list)


async def test_async_client_shares_the_calls(airflow: LocalAirflow) -> None:
    async with AsyncAirflowClient(airflow.url, airflow.username, airflow.password) as client:
        health = await client.health()
        assert health["scheduler"]["status"] == "healthy"
        assert isinstance(await client.list_dags(), list)
        with pytest.raises(AirflowNotFoundError):
            await client.get_dag_run("no_such_dag", "manual__2013-01-01T00:00:00+00:00")


def test_the_scheduler_side_parses_the_project_dags(airflow_client: AirflowClient) -> None:
    """What the dag-processor of a real deployment makes of ``dags/``, seen through the API."""
    monitor = airflow_client.wait_for_dag("ml_monitor", timeout=180)
    assert monitor["is_paused"] is True  # new DAGs wait for a person to switch them on
    assert airflow_client.import_errors() == []
    params = airflow_client.dag_details("ml_monitor")["params"]
    assert params["drift_backend"]["schema"]["enum"] == ["alibi", "scipy"]
    assert "ROC AUC" in params["min_roc_auc"]["description"]
