"""Deployment operators: infra-validate a version, roll it out through the gateway, roll it back.

Thin on purpose: the sandbox check is ``conveyor.serving.infra``, the rollout runs (and is
analysed, and rolled back automatically) inside the gateway, the alias history is
``conveyor.core.registry``. The operators pass settings and report.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from conveyor.clients.gateway import SETTLED_STATES, rollout_key
from conveyor.triggers.rollout import RolloutTrigger


class InfraValidateOperator(BaseOperator):
    """Load ``model_uri`` in a sandboxed gateway and send it real rows; fail if it is not servable.

    Not servable: it does not load (the task fails seconds after the sandbox tried, with the
    gateway's load error in the message), an answer is not 200, lacks a prediction per row or a
    output column of the version's contract, holds a value the gate would refuse (non-finite, a
    probability outside [0, 1], an unknown class), or the median latency exceeds ``max_latency_s``.

    :param model_uri: e.g. ``models:/my_model@challenger`` (templated).
    :param sample_rows: rows from the version's evaluation set (or input example) to send.
    :param max_latency_s: bound on the median request latency.
    :param load_timeout_s: how long a load that neither succeeds nor fails may take.
    :param mlflow_conn_id: connection of type ``conveyor_mlflow``.
    """

    template_fields = ("model_uri",)
    ui_color = "#fdf2d0"

    def __init__(
        self,
        *,
        model_uri: str,
        sample_rows: int = 50,
        max_latency_s: float = 1.0,
        load_timeout_s: float = 300.0,
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_uri = model_uri
        self.sample_rows = sample_rows
        self.max_latency_s = max_latency_s
        self.load_timeout_s = load_timeout_s
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from conveyor.hooks.mlflow import MlflowHook
        from conveyor.serving import infra

        hook = MlflowHook(self.mlflow_conn_id)
        hook.get_conn()  # exports credentials, fails fast if MLflow is down
        rows = infra.sample_rows(self.model_uri, hook.tracking_uri, self.sample_rows)
        self.log.info(
            "infra-validating %s with %d real rows in a sandboxed gateway", self.model_uri, len(rows)
        )
        report = infra.validate(
            self.model_uri,
            hook.tracking_uri,
            rows,
            max_latency_s=self.max_latency_s,
            load_timeout_s=self.load_timeout_s,
        )
        self.log.info("infra validation report:\n%s", json.dumps(report.to_dict(), indent=2))
        if not report.passed:
            raise AirflowException(f"{self.model_uri} is not servable: " + "; ".join(report.problems[:5]))
        return report.to_dict()


class DeployModelOperator(BaseOperator):
    """Roll ``model_uri`` out to a gateway deployment with a traffic strategy.

    A deployment that does not exist yet gets the version in its stable slot directly. Otherwise
    the gateway runs the rollout (canary steps with analysis, blue-green switch or shadow); this
    task waits while the version loads, then, if analysis follows, in the triggerer
    (``deferrable=True``), logging each transition. It
    succeeds when the rollout succeeds (blue-green: once switched), fails when the gateway rolled
    back or could not load the version, and on a pause (inconclusive analysis) either keeps
    waiting for a person (``on_pause="wait"``) or fails (``"fail"``).

    :param deployment: gateway deployment name (templated).
    :param model_uri: version to roll out (templated).
    :param strategy: ``canary``, ``blue_green`` or ``shadow`` (templated).
    :param steps: canary weights in percent, e.g. ``[10, 50, 100]``.
    :param analysis: analysis settings (see ``conveyor.core.analysis.AnalysisConfig``).
    :param unreachable_timeout: seconds the gateway may stay unreachable while the task waits
        before it fails; a gateway that answers but no longer knows the rollout (it restarted)
        fails the task at once.
    """

    template_fields = ("deployment", "model_uri", "strategy")
    template_fields_renderers = {"analysis": "json"}
    ui_color = "#d0e6fd"

    def __init__(
        self,
        *,
        deployment: str,
        model_uri: str,
        strategy: str = "canary",
        steps: list[int] | tuple[int, ...] = (10, 50, 100),
        analysis: dict[str, Any] | None = None,
        shadow_fraction: float = 0.1,
        keep_previous_s: float = 300.0,
        on_pause: str = "wait",
        gateway_conn_id: str = "conveyor_gateway_default",
        deferrable: bool = True,
        poll_interval: float = 5.0,
        unreachable_timeout: float = 300.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_pause not in ("wait", "fail"):
            raise ValueError(f"on_pause must be 'wait' or 'fail', got {on_pause!r}")
        self.deployment = deployment
        self.model_uri = model_uri
        self.strategy = strategy
        self.steps = list(steps)
        self.analysis = analysis or {}
        self.shadow_fraction = shadow_fraction
        self.keep_previous_s = keep_previous_s
        self.on_pause = on_pause
        self.gateway_conn_id = gateway_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.unreachable_timeout = unreachable_timeout

    def spec(self) -> dict[str, Any]:
        return {
            "model_uri": self.model_uri,
            "strategy": self.strategy,
            "steps": self.steps,
            "analysis": self.analysis,
            "shadow_fraction": self.shadow_fraction,
            "keep_previous_s": self.keep_previous_s,
        }

    def execute(self, context: Any) -> dict[str, Any]:
        from conveyor.hooks.gateway import GatewayHook

        with GatewayHook(self.gateway_conn_id).get_conn() as client:
            if not client.exists(self.deployment):
                deployment = client.deploy_slot(self.deployment, self.model_uri)
                version = deployment["slots"]["stable"]["model_version"]
                self.log.info("new deployment %s: version %s serves all traffic", self.deployment, version)
                return {"state": "succeeded", "deployment": deployment}
            key = rollout_key(client.start_rollout(self.deployment, self.spec()))
            self.log.info("started a %s rollout of %s on %s", self.strategy, self.model_uri, self.deployment)
            if not self.deferrable:
                rollout = client.wait_rollout(
                    self.deployment, poll_s=self.poll_interval, progress=self._show, key=key
                )
                return self._finish(rollout)
            # Loading the version takes seconds, so this process waits for it; only a rollout that
            # then waits on analysis (minutes) goes to the triggerer. A blue-green switch or a failed
            # load thus ends here: a trigger firing within seconds of its deferral is failed by
            # Airflow 3.3 although the task succeeds (the scheduler takes the deferring process's
            # late exit event for the resumed one's, apache/airflow#71580).
            rollout = client.wait_rollout(
                self.deployment,
                poll_s=min(self.poll_interval, 0.5),
                until=(*SETTLED_STATES, "progressing"),
                progress=self._show,
                key=key,
            )
            if rollout["state"] != "progressing":
                return self._finish(rollout)
        self._defer(rollout_key(rollout), seen=len(rollout["transitions"]))
        return {}

    def _defer(
        self, key: dict[str, str | None], seen: int = 0, until: tuple[str, ...] = SETTLED_STATES
    ) -> None:
        """Wait in the triggerer for the rollout ``key`` names (``rollout_key``), and no other,
        to reach one of ``until``."""
        self.defer(
            trigger=RolloutTrigger(
                self.deployment,
                self.gateway_conn_id,
                until,
                self.poll_interval,
                seen,
                model_uri=key["model_uri"],
                started_at=key["started_at"],
                unreachable_timeout=self.unreachable_timeout,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:

        if event["status"] == "error":
            raise AirflowException(f"lost track of the rollout of {self.deployment}: {event['message']}")
        rollout = event["rollout"]
        if rollout["state"] == "paused" and self.on_pause == "wait":
            self.log.info("rollout paused for a decision: resume, promote or roll back it on the gateway")
            # until it is no longer paused: waiting on "paused" again would fire at once, forever
            moved_on = tuple(state for state in SETTLED_STATES if state != "paused")
            self._defer(rollout_key(rollout), seen=len(rollout["transitions"]), until=moved_on)
        return self._finish(rollout)

    def _show(self, t: dict[str, Any]) -> None:
        self.log.info(
            "%s: %s -> %s (canary %s%%): %s", t["at"], t["from"], t["to"], t["canary_weight"], t["reason"]
        )

    def _finish(self, rollout: dict[str, Any]) -> dict[str, Any]:
        last = rollout["transitions"][-1]["reason"] if rollout.get("transitions") else ""
        if rollout["state"] in ("succeeded", "switched"):
            self.log.info("rollout %s: %s", rollout["state"], last)
            return rollout
        raise AirflowException(
            f"rollout of {self.model_uri} to {self.deployment} ended {rollout['state']}: {last}"
        )


class RollbackDeploymentOperator(BaseOperator):
    """Put the previous version back on a deployment and, optionally, the previous registry alias.

    :param deployment: gateway deployment (templated).
    :param model_uri: version to go back to when the previous one is no longer kept warm (templated).
    :param registry_model: registered model whose ``alias`` to restore through
        ``conveyor.core.registry.rollback`` (audit entry included); ``None`` leaves the registry alone.
    :param reason: why, for the audit trail (templated).
    """

    template_fields = ("deployment", "model_uri", "registry_model", "reason")
    ui_color = "#fdd0d0"

    def __init__(
        self,
        *,
        deployment: str,
        model_uri: str | None = None,
        registry_model: str | None,
        alias: str = "champion",
        reason: str = "rollback of the deployment",
        gateway_conn_id: str = "conveyor_gateway_default",
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.model_uri = model_uri
        self.registry_model = registry_model
        self.alias = alias
        self.reason = reason
        self.gateway_conn_id = gateway_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from conveyor.hooks.gateway import GatewayHook
        from conveyor.operators.audit import actor, task_key

        with GatewayHook(self.gateway_conn_id).get_conn() as client:
            deployment = client.rollback(self.deployment, self.model_uri or None)
        version = deployment["slots"]["stable"]["model_version"]
        self.log.info("%s: stable now serves version %s", self.deployment, version)
        result: dict[str, Any] = {"deployment": self.deployment, "stable_version": version}
        if self.registry_model:
            from conveyor.core import registry
            from conveyor.hooks.mlflow import MlflowHook

            entry = registry.rollback(
                MlflowHook(self.mlflow_conn_id).get_conn(),
                self.registry_model,
                reason=self.reason,
                actor=actor(context),
                key=task_key(context),
                alias=self.alias,
            )
            self.log.info("registry: %s@%s back to v%s", entry.model_name, entry.alias, entry.version)
            result["registry"] = {
                "alias": entry.alias,
                "version": entry.version,
                "from": entry.previous_version,
            }
        return result
