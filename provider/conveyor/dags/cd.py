"""ml_cd: take the challenger ml_ci gated to production, with a person (or auto-approve) in the loop.

Runs on every ``model://<name>/challenger`` event (the version is the event's extra, so the version
ml_ci gated is the one deployed even if the alias moved since), or manually with
``model_version``. Infra-validate in a sandboxed gateway → load into the production gateway's
staging slot → smoke test through that slot → approval (Airflow HITL: Approve/Reject in the UI's
Required Actions or the REST API; no answer within the timeout counts as Reject; ``auto_approve``
skips the question) → rollout by ``strategy`` (canary with analysis and automatic rollback,
blue-green, or shadow) → ``champion`` moves to the version (not after a shadow, which never takes
traffic). If the rollout or the promotion fails, the gateway is put back on the current champion,
so traffic and registry never disagree, and the run still ends **failed**: ``restore_champion``
shows the restore as its own green task, ``fail_run`` (red) makes the failure the run's state, so
alerting and ``on_failure_callback`` see it. A rejected version changes nothing and the run ends
success; so does a shadow rollout that compared (production never changed hands).

The model and the deployment are fixed per DAG (the contract's name, ``airflow.cd.deployment``),
not form fields: a run of one model's ml_cd can never put another model on its deployment.
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Asset, Param, task
from airflow.sdk.exceptions import AirflowFailException

from conveyor.dags.config import STRATEGIES, DagSpec
from conveyor.operators.deploy import DeployModelOperator, InfraValidateOperator, RollbackDeploymentOperator
from conveyor.operators.registry import PromoteModelOperator
from conveyor.operators.staging import SmokeTestOperator, StageModelOperator

# A manual run names the version; an asset-triggered run deploys the newest event's version.
VERSION = "{{ params.model_version or (triggering_asset_events.values() | first | last).extra['version'] }}"


def build(spec: DagSpec) -> DAG:
    cd, name, deployment, dag_id = spec.config.cd, spec.name, spec.config.cd.deployment, spec.dag_id("ml_cd")
    model_uri = f"models:/{name}/{VERSION}"
    hours = f"{cd.approval_timeout.total_seconds() / 3600:g} h"
    with DAG(
        dag_id=dag_id,
        description="Infra validation -> staging + smoke test -> approval -> rollout -> champion",
        schedule=[Asset(uri=spec.asset_uri, name=spec.asset_name)],
        start_date=spec.config.ci.start_date,
        catchup=False,
        # Two rollouts on one deployment would fight over its traffic.
        max_active_runs=1,
        tags=spec.tags("cd"),
        default_args=spec.connection_args,
        params={
            "model_version": Param(
                "",
                type="string",
                pattern=r"^\d*$",
                description=f"Version of {name} to deploy (manual runs). Empty: the version in the "
                f"triggering {spec.asset_uri} event.",
            ),
            "strategy": Param(
                cd.strategy,
                enum=list(STRATEGIES),
                description="canary: " + " -> ".join(f"{s}%" for s in cd.canary_steps) + " with "
                "analysis and automatic rollback; blue_green: load beside, switch at once; shadow: "
                "mirror traffic, compare, never promote.",
            ),
            "auto_approve": Param(
                False,
                type="boolean",
                description="Skip the human approval (demos, tests). Off: someone must approve in "
                f"Required Actions; no answer in {hours} counts as Reject.",
            ),
        },
        doc_md=spec.doc_md(__doc__ or ""),
    ) as dag:
        infra_validate = InfraValidateOperator(
            task_id="infra_validate", model_uri=model_uri, sample_rows=cd.infra_sample_rows
        )
        deploy_staging = StageModelOperator(
            task_id="deploy_staging", deployment=deployment, model_uri=model_uri
        )
        smoke_test = SmokeTestOperator(task_id="smoke_test", deployment=deployment, model_uri=model_uri)

        @task.branch(task_id="approval_route", trigger_rule="none_failed")
        def approval_route(params: dict) -> str:
            """Ask a person unless auto_approve; also runs when staging was skipped (first deployment)."""
            return "auto_approve" if params["auto_approve"] else "approve_production"

        route = approval_route()
        approve = ApprovalOperator(
            task_id="approve_production",
            subject=f"Deploy {name} v{VERSION} to {deployment}?",
            body=(
                f"**{name} v{VERSION}** passed the model gate, infra validation and the staging smoke "
                "test ({{ ti.xcom_pull(task_ids='smoke_test') or 'skipped: first deployment' }}).\n\n"
                f"Approve to roll it out to **{deployment}** with the "
                "**{{ params.strategy }}** strategy. "
                f"Reject (or no answer within {hours}) leaves production as it is."
            ),
            defaults=["Reject"],
            response_timeout=cd.approval_timeout,
        )
        auto_approve = EmptyOperator(task_id="auto_approve")
        rollout = DeployModelOperator(
            task_id="rollout",
            deployment=deployment,
            model_uri=model_uri,
            strategy="{{ params.strategy }}",
            steps=cd.canary_steps,
            analysis=dict(cd.analysis or {}),
            trigger_rule="none_failed_min_one_success",
        )

        @task.short_circuit(task_id="takes_traffic", ignore_downstream_trigger_rules=False)
        def takes_traffic(params: dict) -> bool:
            """A shadow rollout only compares: production still runs the champion, so it stays champion."""
            return params["strategy"] != "shadow"

        promote_champion = PromoteModelOperator(
            task_id="promote_champion",
            model_name=name,
            gate_task_id=None,
            version=VERSION,
            reason=f"{dag_id} "
            + "{{ run_id }}: {{ params.strategy }} rollout to "
            + f"{deployment} succeeded",
        )
        restore_champion = RollbackDeploymentOperator(
            task_id="restore_champion",
            deployment=deployment,
            model_uri=f"models:/{name}@champion",
            # The alias moves only after a successful rollout: here it never moved.
            registry_model=None,
            reason=f"{dag_id} " + "{{ run_id }}: rollout or promotion failed",
            trigger_rule="one_failed",
        )

        @task(task_id="fail_run", trigger_rule="one_failed")
        def fail_run() -> None:
            """Keep a restored failure red: the run's state is decided by its leaf tasks only, and
            without this one the successful ``restore_champion`` leaf would turn a failed rollout
            into a green run that no alert ever sees. Skipped when nothing failed."""
            raise AirflowFailException(
                "the rollout or the promotion failed (see the failed task above); restore_champion "
                "put the deployment back on the champion"
            )

        infra_validate >> deploy_staging >> smoke_test >> route >> [approve, auto_approve] >> rollout
        rollout >> takes_traffic() >> promote_champion
        [rollout, promote_champion] >> restore_champion
        [rollout, promote_champion] >> fail_run()
    return dag
