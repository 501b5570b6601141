"""``ModelGateOperator``: the model gate of ``conveyor.core.gate`` as an Airflow task."""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from conveyor.links.mlflow import MlflowModelVersionLink, MlflowRunLink, publish_links
from conveyor.operators.audit import actor


class ModelGateOperator(BaseOperator):
    """Score the candidate and the champion on one held-out set and decide whether to promote.

    A candidate that cannot be scored (does not load, raises on predict, answers with the wrong
    columns, rows, NaN or values outside [0, 1]) is a recorded rejection like bad metrics; faults
    that are not the candidate's (bad rules, no eval set, MLflow down, a champion that cannot be
    scored) raise, so the task fails and its retries apply.

    :param model_name: registered model (templated).
    :param rules: per metric ``{"threshold": float, "tolerance": float, "higher_is_better": bool}``
        (templated; a dict or its JSON). ``threshold`` is absolute, ``tolerance`` the
        non-inferiority margin against the champion (``{"roc_auc": {"tolerance": 0.005}}`` means
        AUC >= champion - 0.005). Default: the ``gate.metrics`` of the candidate's contract.
    :param candidate: version or alias of the candidate (templated), default ``challenger``.
    :param baseline: version or alias to compare against (templated), default ``champion``.
    :param eval_set_path: a parquet file with features + the contract's label (templated); by default the
        ``evaluation/eval_set.parquet`` the candidate's training run logged.
    :param no_champion: ``absolute_only`` (first model: thresholds only, recorded as such) or ``reject``.
    :param force_reason: non-empty → the gate passes as ``forced`` whatever the metrics say, and the
        reason and the user are recorded (templated, e.g. ``{{ params.force_reason }}``).
    :param fail_on_reject: a rejection fails the task (no retries); ``False`` skips it instead so
        the run stays green and downstream promotion is skipped.
    :param mlflow_conn_id: connection of type ``conveyor_mlflow``.

    Returns the decision as a dict (XCom), which ``PromoteModelOperator`` reads.
    """

    template_fields = ("model_name", "rules", "candidate", "baseline", "eval_set_path", "force_reason")
    template_fields_renderers = {"rules": "json"}
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#fde2c4"

    def __init__(
        self,
        *,
        model_name: str,
        rules: dict[str, dict[str, Any]] | str | None = None,
        candidate: str = "challenger",
        baseline: str = "champion",
        eval_set_path: str | None = None,
        no_champion: str = "absolute_only",
        force_reason: str | None = None,
        fail_on_reject: bool = True,
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rules = rules
        self.model_name = model_name
        self.candidate = candidate
        self.baseline = baseline
        self.eval_set_path = eval_set_path
        self.no_champion = no_champion
        self.force_reason = force_reason
        self.fail_on_reject = fail_on_reject
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from conveyor.core.gate import rules_from_mapping, run_gate
        from conveyor.hooks.mlflow import MlflowHook

        hook = MlflowHook(self.mlflow_conn_id)
        client = hook.get_conn()
        rules = None
        if self.rules:
            rules = rules_from_mapping(json.loads(self.rules) if isinstance(self.rules, str) else self.rules)
        eval_set = None
        if self.eval_set_path:
            import pandas as pd

            eval_set = pd.read_parquet(self.eval_set_path)
        decision = run_gate(
            client,
            self.model_name,
            rules,
            candidate=str(self.candidate),
            baseline=str(self.baseline),
            eval_set=eval_set,
            no_champion=self.no_champion,  # type: ignore[arg-type]
            force_reason=(self.force_reason or "").strip() or None,
            actor=actor(context),
            log=self.log,
        )
        self.log.info("\n%s", decision.render_table())
        publish_links(
            context,
            hook,
            run_id=decision.candidate_run_id,
            name=self.model_name,
            version=decision.candidate_version,
        )
        if not decision.allows_promotion:
            message = (
                f"model gate rejected {self.model_name} v{decision.candidate_version}: {decision.reason}"
            )
            if self.fail_on_reject:
                raise AirflowFailException(message)
            raise AirflowSkipException(message)
        return json.loads(decision.to_json())
