"""ml_monitor: watch the live model's inference log; on drift or decay, ask ml_ci to retrain.

Scheduled (``airflow.monitor.schedule``, hourly in the demo): a data-drift sensor (inputs vs the
training reference sample) and a performance sensor (labelled feedback, judged by the contract's
metrics: one bound per metric on the form) wait in the triggerer until their window holds enough
rows, test it once, and report to MLflow and the Pushgateway. If either fired,
``RetrainRequestOperator`` records why and returns the ml_ci conf (reason, recent partitions, who
asked), which triggers this model's ml_ci. A sensor that finds too little traffic before its
timeout is skipped (``on_too_few_rows="skip"``), so one quiet signal does not hide the other. A
sensor that cannot read its data (no inference log at the URL, a corrupt log file, no reference
sample in MLflow) or fails on bad input fails the run, red, with the reason: it never reads as
"no drift", and no retraining is requested.

The inference log and the Pushgateway are the gateway's, shared by every model, so they come from
the Airflow Variables ``conveyor_inference_log_url`` and ``conveyor_pushgateway_url``; the
retraining partitions are this model's (a prefixed DAG reads ``<model>__conveyor_retrain_partitions``).
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, CronTriggerTimetable, Param

from conveyor.dags import metrics
from conveyor.dags.config import DRIFT_BACKENDS, DagSpec
from conveyor.operators.retrain import RetrainRequestOperator
from conveyor.sensors.drift import DataDriftSensor, ModelPerformanceSensor

INFERENCE_LOG = "{{ params.inference_log_url or var.value.get('conveyor_inference_log_url', '') }}"
PUSHGATEWAY = "{{ var.value.get('conveyor_pushgateway_url', '') }}"


def build(spec: DagSpec) -> DAG:
    monitor, name, dag_id = spec.config.monitor, spec.name, spec.dag_id("ml_monitor")
    one = spec.config.ci.partition.pattern
    variable = spec.retrain_partitions_variable
    # A list of partitions, or None: those the drifted window covers, named as ml_ci names them.
    retrain_partitions = (
        f"{{{{ (params.retrain_partitions or var.value.get('{variable}', '')).split(',')"
        " | map('trim') | select | list or None }}"
    )
    with DAG(
        dag_id=dag_id,
        description="Drift and performance monitoring of the champion; triggers "
        + f"{spec.dag_id('ml_ci')} to retrain",
        schedule=CronTriggerTimetable(monitor.schedule, timezone=spec.config.timezone),
        start_date=monitor.start_date,
        catchup=False,
        max_active_runs=1,
        tags=spec.tags("monitoring"),
        # Numbers from params reach the sensors as numbers, not as their text.
        render_template_as_native_obj=True,
        default_args=spec.connection_args,
        params={
            "model_version": Param(
                "champion", type="string", description=f"Version or alias of {name} whose traffic is tested."
            ),
            "inference_log_url": Param(
                "",
                type="string",
                description="fsspec root of the gateway's inference log; empty: the Airflow Variable "
                "conveyor_inference_log_url.",
            ),
            "window_hours": Param(
                monitor.window_hours,
                type="number",
                minimum=0.01,
                description="Length of the window of live traffic tested.",
            ),
            "drift_backend": Param(
                monitor.drift_backend,
                enum=list(DRIFT_BACKENDS),
                description="alibi-detect (BSL licence) or the permissive scipy tests (KS, chi2, PSI).",
            ),
            **_threshold_params(spec),
            "retrain_partitions": Param(
                "",
                type="string",
                pattern=f"^({one}(,{one})*)?$",
                description=f"Partitions {spec.dag_id('ml_ci')} retrains on, comma-separated; empty: the "
                f"Airflow Variable {variable}, else the partitions the tested window covers. Set it when "
                "the traffic replays other partitions.",
            ),
        },
        doc_md=spec.doc_md(__doc__ or ""),
    ) as dag:
        common = {
            "inference_log_url": INFERENCE_LOG,
            "model_name": name,
            "model_version": "{{ params.model_version }}",
            "window_hours": "{{ params.window_hours }}",
            "pushgateway_url": PUSHGATEWAY,
            "timeout": monitor.timeout.total_seconds(),
            "on_too_few_rows": "skip",
        }
        data_drift = DataDriftSensor(
            task_id="data_drift",
            drift_config={"backend": "{{ params.drift_backend }}", **monitor.drift},
            min_rows=monitor.drift_min_rows,
            **common,
        )
        performance = ModelPerformanceSensor(
            task_id="model_performance",
            thresholds={
                metric: metrics.param_value(metrics.threshold_param(spec.contract.task, metric))
                for metric in monitor.thresholds
            },
            tolerance=monitor.tolerance,
            min_rows=monitor.performance_min_rows,
            **common,
        )
        retrain_request = RetrainRequestOperator(
            task_id="retrain_request",
            monitor_task_ids=["data_drift", "model_performance"],
            triggered_by=f"{dag_id}/" + "{{ run_id }}",
            partitions=retrain_partitions,
            partition_format=spec.config.ci.partition.format,
            trigger_rule="none_failed",
        )
        trigger_ml_ci = TriggerDagRunOperator(
            task_id="trigger_ml_ci",
            trigger_dag_id=spec.dag_id("ml_ci"),
            conf=retrain_request.output,
            # No logical date: ml_ci trains on the partitions in the conf, not on a schedule interval.
            logical_date=None,
            note=f"retraining requested by {dag_id}",
        )
        [data_drift, performance] >> retrain_request >> trigger_ml_ci
    return dag


def _threshold_params(spec: DagSpec) -> dict[str, Param]:
    """One bound per monitored metric: a floor where higher is better, a ceiling where lower is."""
    task = spec.contract.task
    return {
        metrics.threshold_param(task, metric): Param(
            value,
            type="number",
            description=f"{metrics.LABELS[metric]} {metrics.threshold_word(task, metric)} on labelled "
            "feedback.",
            **metrics.bounds(metric),
        )
        for metric, value in spec.config.monitor.thresholds.items()
    }
