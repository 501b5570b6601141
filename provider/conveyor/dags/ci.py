"""ml_ci: validate a partition, train and evaluate with Kedro, gate the candidate, hand it to ml_cd.

Scheduled with a real data interval (``CronDataIntervalTimetable``): a run trains on the
partition its interval's start names (``airflow.ci.partition.format``; the demo's run for
[2013-03-01, 2013-04-01) trains on ``2013-03``), so a backfill over a range trains one model per
partition. Manual runs (UI form, REST, ml_monitor's retraining request) train on
``params.partitions`` instead. A backfill run trains, registers and gates, but never publishes the
challenger, so nothing old is ever deployed; other runs emit ``model://<name>/challenger`` (the
gated version in the event's extra) and ml_cd picks it up.

The gate judges the contract's ``gate.metrics``, one threshold and/or tolerance field per metric
on the form (defaults from the contract), so a run can loosen or tighten a rule and the decision
records what it was judged by. Each ``train`` task gives Kedro a private scratch ``data_root``, so
two runs (a backfill with ``max_active_runs=2``) train at the same time without reading each
other's intermediate files; what a run produced lives on in MLflow.

Each partition is validated once: the ``train`` task hands the gate tasks' MLflow runs to Kedro,
and a gate of the pipeline that meets the same suite on the same rows (same content hash) reuses
their outcomes, evaluating only the expectations they skipped for want of a parameter
(``conveyor.core.validation_record``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param

from conveyor.dags import metrics
from conveyor.dags.config import Ci, DagSpec, KedroParam
from conveyor.operators.challenger import PublishChallengerOperator
from conveyor.operators.gate import ModelGateOperator
from conveyor.operators.kedro import KedroRunOperator
from conveyor.operators.validation import DataValidationOperator


def build(spec: DagSpec) -> DAG:
    ci = spec.config.ci
    # Scheduled and backfill runs: the partition of their data interval; every other run: the params.
    partition = (
        f"(data_interval_start.strftime('{ci.partition.format}') "
        "if dag_run.run_type in ('scheduled', 'backfill') else params.partitions)"
    )
    with DAG(
        dag_id=spec.dag_id("ml_ci"),
        description=(
            "Data validation -> Kedro training/evaluation -> model gate -> challenger for "
            + spec.dag_id("ml_cd")
        ),
        schedule=CronDataIntervalTimetable(ci.schedule, timezone=spec.config.timezone),
        start_date=ci.start_date,
        end_date=ci.end_date,
        catchup=False,
        max_active_runs=ci.max_active_runs,
        tags=spec.tags("ci"),
        # Numbers and the gate rules reach the operators as numbers and dicts, not as their text.
        render_template_as_native_obj=True,
        default_args=spec.connection_args,
        user_defined_macros={"kedro_runtime_params": partial(runtime_params, ci)},
        params={**_partition_params(ci), **_kedro_form(ci.params), **gate_params(spec), **_force_param()},
        doc_md=spec.doc_md(__doc__ or ""),
    ) as dag:
        gates = [
            DataValidationOperator(
                task_id="validate_data" if len(ci.data_gate) == 1 else f"validate_{dataset}",
                suite_dataset=suite,
                dataset=dataset,
                partition="{{ " + partition + " }}",
            )
            for dataset, suite in ci.data_gate
        ]
        train = KedroRunOperator(
            task_id="train",
            scratch_data=True,
            runtime_params="{{ kedro_runtime_params(" + partition + ", params) }}",
            # The pipeline's own gate takes the gate tasks' outcomes for the rows they checked.
            reuse_validation="{{ ti.xcom_pull(task_ids="
            + repr([gate.task_id for gate in gates])
            + ", key='mlflow_run_id') }}",
        )
        model_gate = ModelGateOperator(
            task_id="model_gate",
            model_name=spec.name,
            candidate="{{ ti.xcom_pull(task_ids='train', key='model_version') }}",
            rules=gate_rules(spec),
            force_reason="{{ params.force_reason }}",
            # A rejected candidate ends the run green with the gate skipped and its reason logged.
            fail_on_reject=False,
        )
        publish = PublishChallengerOperator(
            task_id="publish_challenger", asset=Asset(uri=spec.asset_uri, name=spec.asset_name)
        )
        gates >> train >> model_gate >> publish
    return dag


def runtime_params(ci: Ci, partition: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Kedro's runtime parameters for one training: the partition, and every form field that is
    set, nested by its dotted path; an empty field leaves the project's own value."""
    out: dict[str, Any] = {ci.partition.runtime_param: partition}
    for field in ci.params:
        value = params.get(field.name)
        if value is None:
            continue
        *parents, leaf = field.runtime_param.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def gate_params(spec: DagSpec) -> dict[str, Param]:
    """One field per threshold and tolerance the contract's gate declares, defaulting to it."""
    task = spec.contract.task
    fields: dict[str, Param] = {}
    for rule in spec.contract.gate:
        label = metrics.LABELS[rule.metric]
        if rule.threshold is not None:
            fields[metrics.threshold_param(task, rule.metric)] = Param(
                rule.threshold,
                type="number",
                description=f"Absolute {label} {metrics.threshold_word(task, rule.metric)} of the "
                "model gate.",
                **metrics.bounds(rule.metric),
            )
        if rule.tolerance is not None:
            worse = "lower" if rule.higher_is_better else "higher"
            fields[metrics.tolerance_param(rule.metric)] = Param(
                rule.tolerance,
                type="number",
                minimum=0,
                description=f"Non-inferiority margin: the candidate's {label} may be at most this much "
                f"{worse} than the champion's.",
            )
    return fields


def gate_rules(spec: DagSpec) -> dict[str, dict[str, Any]]:
    """The gate's rules as a template: the contract's metrics with the run's form values."""
    task = spec.contract.task
    rules: dict[str, dict[str, Any]] = {}
    for rule in spec.contract.gate:
        body: dict[str, Any] = {"higher_is_better": rule.higher_is_better}
        if rule.threshold is not None:
            body["threshold"] = metrics.param_value(metrics.threshold_param(task, rule.metric))
        if rule.tolerance is not None:
            body["tolerance"] = metrics.param_value(metrics.tolerance_param(rule.metric))
        rules[rule.metric] = body
    return rules


def _partition_params(ci: Ci) -> dict[str, Param]:
    one, default = ci.partition.pattern, ci.partition.default
    examples = default[0] if len(default) == 1 else f"{default[0]} or {default[0]},{default[1]}"
    return {
        "partitions": Param(
            ",".join(ci.partition.default),
            type="string",
            pattern=f"^{one}(,{one})*$",
            description=f"Partitions to train on for manual and triggered runs, comma-separated "
            f"({examples}). Scheduled and backfill runs train on the partition of their data "
            "interval instead.",
        )
    }


def _kedro_form(fields: tuple[KedroParam, ...]) -> dict[str, Param]:
    form = {}
    for field in fields:
        bounds = {k: v for k, v in (("minimum", field.minimum), ("maximum", field.maximum)) if v is not None}
        form[field.name] = Param(
            field.default, type=["null", field.type], description=field.description, **bounds
        )
    return form


def _force_param() -> dict[str, Param]:
    return {
        "force_reason": Param(
            "",
            type="string",
            description="Non-empty: pass the gate whatever the metrics, recording this reason.",
        )
    }
