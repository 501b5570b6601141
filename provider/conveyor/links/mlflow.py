"""Buttons on a task instance that open the MLflow run or model version the task worked on.

In Airflow 3 the worker calls ``get_link`` when the task finishes and stores the URL; the
operators push ``mlflow_run_url`` / ``model_version_url`` to XCom during ``execute`` (they know
the browser-facing address from the MLflow connection), so the link only has to read it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

    from conveyor.hooks.mlflow import MlflowHook

RUN_URL_KEY = "mlflow_run_url"
MODEL_VERSION_URL_KEY = "model_version_url"


def _xcom_url(ti_key: TaskInstanceKey, key: str) -> str:
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_value(ti_key=ti_key, key=key) or ""


class MlflowRunLink(BaseOperatorLink):
    """The MLflow run the task created or judged."""

    name = "MLflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return _xcom_url(ti_key, RUN_URL_KEY)


class MlflowModelVersionLink(BaseOperatorLink):
    """The registered model version the task registered, gated, promoted or restored."""

    name = "MLflow model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return _xcom_url(ti_key, MODEL_VERSION_URL_KEY)


def publish_links(
    context: Any,
    hook: MlflowHook,
    *,
    run_id: str | None = None,
    name: str | None = None,
    version: str | None = None,
) -> None:
    """Push the URLs the links above read; called from ``execute`` of every MLflow-facing operator."""
    ti = context["ti"]
    if run_id:
        ti.xcom_push(key=RUN_URL_KEY, value=hook.run_url(run_id))
    if name and version:
        ti.xcom_push(key=MODEL_VERSION_URL_KEY, value=hook.model_version_url(name, str(version)))
