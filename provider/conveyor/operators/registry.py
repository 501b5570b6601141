"""``PromoteModelOperator`` and ``RollbackModelOperator``: ``conveyor.core.registry`` as Airflow tasks."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from conveyor.links.mlflow import MlflowModelVersionLink, publish_links
from conveyor.operators.audit import actor, is_backfill, task_key


class PromoteModelOperator(BaseOperator):
    """Move ``alias`` (``champion``) to the version the gate passed, with an audit entry.

    :param model_name: registered model (templated).
    :param gate_task_id: task id of the ``ModelGateOperator`` whose decision to promote; the
        version and the champion the gate compared against come from its XCom, so a champion
        that moved in between makes the promotion fail instead of silently overwriting it.
    :param version: promote this version instead (templated; needs ``gate_task_id=None``); it
        still needs a passed or forced gate on its model version.
    :param reason: why, for the audit trail (templated); defaults to the gate verdict.
    :param alias: alias to move, default ``champion``.
    :param allow_backfill: backfill runs re-train history and must not change production; they
        skip this task unless this is ``True``.
    :param mlflow_conn_id: connection of type ``conveyor_mlflow``.
    """

    template_fields = ("model_name", "version", "reason", "alias")
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#c9f2d0"

    def __init__(
        self,
        *,
        model_name: str,
        gate_task_id: str | None = "model_gate",
        version: str | None = None,
        reason: str | None = None,
        alias: str = "champion",
        allow_backfill: bool = False,
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (gate_task_id is None) == (version is None):
            raise ValueError("set exactly one of gate_task_id and version")
        self.model_name = model_name
        self.gate_task_id = gate_task_id
        self.version = version
        self.reason = reason
        self.alias = alias
        self.allow_backfill = allow_backfill
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from conveyor.core import registry
        from conveyor.hooks.mlflow import MlflowHook

        if is_backfill(context) and not self.allow_backfill:
            raise AirflowSkipException("backfill runs never promote (allow_backfill=False)")
        hook = MlflowHook(self.mlflow_conn_id)
        client = hook.get_conn()
        if self.gate_task_id is not None:
            decision = context["ti"].xcom_pull(task_ids=self.gate_task_id)
            if not decision:
                raise ValueError(f"no gate decision in the XCom of task {self.gate_task_id!r}")
            version, expected = decision["candidate_version"], decision["baseline_version"]
            reason = self.reason or f"model gate {decision['status']}: {decision['reason']}"
        else:
            version = str(self.version)
            expected = registry.current_version(client, self.model_name, self.alias)
            reason = self.reason or f"manual promotion of v{version}"
        entry = registry.promote(
            client,
            self.model_name,
            version,
            reason=reason,
            actor=actor(context),
            expected_champion=expected,
            key=task_key(context),
            alias=self.alias,
        )
        self.log.info(
            "%s@%s: v%s -> v%s (history entry %d, %s)",
            self.model_name,
            self.alias,
            entry.previous_version,
            entry.version,
            entry.seq,
            entry.reason,
        )
        publish_links(context, hook, name=self.model_name, version=entry.version)
        return asdict(entry)


class RollbackModelOperator(BaseOperator):
    """Restore the champion from before the current one, in one task, and record why.

    :param reason: why (templated, required): it goes into the audit trail.
    :param model_name: registered model (templated).
    :param alias: alias to roll back, default ``champion``.
    :param mlflow_conn_id: connection of type ``conveyor_mlflow``.

    A retry or clear of the same task instance does not roll back a second time.
    """

    template_fields = ("model_name", "reason", "alias")
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#f7c6c6"

    def __init__(
        self,
        *,
        reason: str,
        model_name: str,
        alias: str = "champion",
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reason = reason
        self.model_name = model_name
        self.alias = alias
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from conveyor.core import registry
        from conveyor.hooks.mlflow import MlflowHook

        hook = MlflowHook(self.mlflow_conn_id)
        entry = registry.rollback(
            hook.get_conn(),
            self.model_name,
            reason=self.reason,
            actor=actor(context),
            key=task_key(context),
            alias=self.alias,
        )
        self.log.info(
            "%s@%s rolled back: v%s -> v%s (history entry %d, %s)",
            self.model_name,
            self.alias,
            entry.previous_version,
            entry.version,
            entry.seq,
            entry.reason,
        )
        publish_links(context, hook, name=self.model_name, version=entry.version)
        return asdict(entry)
