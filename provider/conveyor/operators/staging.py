"""Staging on the production gateway: load a version into a deployment's ``staging`` slot, smoke-test it.

The staging slot sits beside the stable version on the real gateway (same binary, same routing,
same inference log) but takes no traffic unless a request asks for it with the
``x-conveyor-slot: staging`` header. Infra validation has already shown that the version loads in
a sandbox; staging shows that it loads and answers where production runs, before anyone is asked
to approve it.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

STAGING = "staging"
SLOT_HEADER = "x-conveyor-slot"


class StageModelOperator(BaseOperator):
    """Load ``model_uri`` into the ``staging`` slot of ``deployment``.

    A deployment that does not exist yet has no stable version for a staging slot to sit beside
    (the gateway refuses): the task is skipped with that reason, and the first version goes to
    approval on the strength of the sandboxed infra validation alone.

    :param deployment: gateway deployment (templated).
    :param model_uri: version to stage (templated), e.g. ``models:/my_model/7``.
    :param gateway_conn_id: connection of type ``conveyor_gateway``.
    """

    template_fields = ("deployment", "model_uri")
    ui_color = "#e4f0d0"

    def __init__(
        self,
        *,
        deployment: str,
        model_uri: str,
        gateway_conn_id: str = "conveyor_gateway_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.model_uri = model_uri
        self.gateway_conn_id = gateway_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from conveyor.hooks.gateway import GatewayHook

        with GatewayHook(self.gateway_conn_id).get_conn() as client:
            if not client.exists(self.deployment):
                raise AirflowSkipException(
                    f"deployment {self.deployment!r} does not exist yet: no stable version to stage "
                    "beside; the first version is approved on its sandboxed infra validation"
                )
            deployment = client.deploy_slot(self.deployment, self.model_uri, slot=STAGING)
        staged = deployment["slots"][STAGING]
        self.log.info(
            "%s: staging slot now holds version %s (%s); stable serves version %s",
            self.deployment,
            staged["model_version"],
            self.model_uri,
            deployment["slots"]["stable"]["model_version"],
        )
        return {
            "deployment": self.deployment,
            "model_uri": self.model_uri,
            "version": staged["model_version"],
        }


class SmokeTestOperator(BaseOperator):
    """Send real rows to a deployment's staging slot and check who answered and what.

    Each request must be answered with HTTP 200 **by the staging slot and the expected version**
    (the gateway lets stable answer when a staging version raises, so a 200 alone proves nothing),
    with one prediction per row carrying every output column of the version's contract, and
    values the gate would accept (finite, probabilities in [0, 1], known classes). The rows are
    the version's own held-out evaluation rows (or its input example), as in infra validation.

    :param deployment: gateway deployment (templated).
    :param model_uri: the staged version (templated); its version number is what must answer.
    :param sample_rows: rows to send, ``batch_size`` per request.
    :param mlflow_conn_id: connection of type ``conveyor_mlflow`` (to read the sample rows).
    """

    template_fields = ("deployment", "model_uri")
    ui_color = "#d0f0e4"

    def __init__(
        self,
        *,
        deployment: str,
        model_uri: str,
        sample_rows: int = 40,
        batch_size: int = 10,
        gateway_conn_id: str = "conveyor_gateway_default",
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.model_uri = model_uri
        self.sample_rows = sample_rows
        self.batch_size = batch_size
        self.gateway_conn_id = gateway_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        import mlflow

        from conveyor.hooks.gateway import GatewayHook
        from conveyor.hooks.mlflow import MlflowHook
        from conveyor.serving import infra
        from conveyor.serving.models import resolve

        hook = MlflowHook(self.mlflow_conn_id)
        hook.get_conn()
        mlflow.set_tracking_uri(hook.tracking_uri)
        _, expected, resolved = resolve(self.model_uri)
        rows = infra.sample_rows(self.model_uri, hook.tracking_uri, self.sample_rows)
        contract = infra.contract_of(resolved)
        problems: list[str] = []
        with GatewayHook(self.gateway_conn_id).get_conn() as client:
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                response = client.predict(
                    {"dataframe_records": batch}, self.deployment, **{SLOT_HEADER: STAGING}
                )
                where = f"rows {start}..{start + len(batch) - 1}"
                if response.status_code != 200:
                    problems.append(f"{where}: HTTP {response.status_code} {response.text[:300]}")
                    break
                slot, version = response.headers.get("x-model-slot"), response.headers.get("x-model-version")
                if (slot, version) != (STAGING, expected):
                    problems.append(
                        f"{where}: answered by {slot} version {version}, not staging version {expected} "
                        "(the staged version failed or is not loaded)"
                    )
                    break
                answer = infra.output_problems(response.json()["predictions"], start, len(batch), contract)
                problems.extend(answer)
                if answer:  # the first wrong answer says it; more rows would repeat it
                    break
        report = {"deployment": self.deployment, "version": expected, "rows": len(rows), "problems": problems}
        if problems:
            raise AirflowException(
                f"smoke test of {self.model_uri} on {self.deployment}/staging failed: "
                + "; ".join(problems[:5])
            )
        self.log.info(
            "smoke test passed: %d real rows answered by %s/staging version %s",
            len(rows),
            self.deployment,
            expected,
        )
        return report
