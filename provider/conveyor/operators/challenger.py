"""``PublishChallengerOperator``: tell ml_cd that a gated challenger is ready, through an Asset event."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from conveyor.operators.audit import is_backfill


class PublishChallengerOperator(BaseOperator):
    """Emit ``asset`` (``model://<name>/challenger``) for the version the model gate passed.

    The version travels in the event's ``extra``: ml_cd deploys exactly the version this run
    gated, even when a later training has moved the ``challenger`` alias in the meantime.
    Backfill runs skip, so no event is emitted: they re-train history, and an event would make
    ml_cd deploy an old model.

    :param asset: the Asset to emit (also declared as the task's outlet).
    :param gate_task_id: the ``ModelGateOperator`` task whose decision names the version.
    :param allow_backfill: emit on backfill runs too (for tests of the CD path only).
    """

    ui_color = "#d9e8fb"

    def __init__(
        self, *, asset: Asset, gate_task_id: str = "model_gate", allow_backfill: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(outlets=[asset], **kwargs)
        self.asset = asset
        self.gate_task_id = gate_task_id
        self.allow_backfill = allow_backfill

    def execute(self, context: Any) -> dict[str, Any]:
        if is_backfill(context) and not self.allow_backfill:
            raise AirflowSkipException("backfill runs never hand a model to ml_cd (allow_backfill=False)")
        decision = context["ti"].xcom_pull(task_ids=self.gate_task_id)
        if not decision or not decision.get("candidate_version"):
            raise ValueError(
                f"no gate decision with a candidate version in the XCom of {self.gate_task_id!r}"
            )
        extra = {
            "model_name": decision["model_name"],
            "version": str(decision["candidate_version"]),
            "gate_status": decision["status"],
            "source_run_id": context["run_id"],
        }
        context["outlet_events"][self.asset].extra = extra
        self.log.info("challenger %s v%s published to %s", extra["model_name"], extra["version"], self.asset)
        return extra
