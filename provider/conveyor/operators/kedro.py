"""``KedroRunOperator``: a Kedro pipeline as one Airflow task, tracked in MLflow."""

from __future__ import annotations

import json
import os
import subprocess
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from conveyor.links.mlflow import MlflowModelVersionLink, MlflowRunLink, publish_links
from conveyor.operators.audit import task_key

# Model-version tag naming the task instance that registered it (retries and clears reuse it).
TASK_TAG = "conveyor.airflow.task"


class KedroRunOperator(BaseOperator):
    """Run a pipeline (or a node/tag selection) of a Kedro project with runtime parameters.

    One task per pipeline, not per node: Kedro's MemoryDatasets cannot cross Airflow tasks and
    every task start costs seconds. The project's own hooks log to MLflow; this operator points
    them at the ``conveyor_mlflow`` connection and pushes ``mlflow_run_id`` and ``model_version``
    (``None`` when the run registered nothing) to XCom, with links to both. The version is tagged
    ``conveyor.airflow.task`` with the task instance, so a retry or a cleared re-run of the same
    task instance returns that version instead of registering a duplicate.

    :param pipeline: registered pipeline name (templated); default ``__default__``.
    :param runtime_params: overrides of ``parameters*.yml`` (templated), e.g.
        ``{"partition": "{{ data_interval_start.strftime('%Y-%m') }}"}``.
    :param node_names: run only these nodes (templated).
    :param tags: run only nodes with any of these tags (templated).
    :param env: Kedro environment (templated); overrides the connection's.
    :param conf_source: configuration folder/archive (templated); overrides the connection's.
    :param project_path: project folder (templated); without it the ``conveyor_kedro``
        connection ``kedro_conn_id`` says where the project is.
    :param python_bin: run in this interpreter (a separate virtualenv that has the project and
        Kedro) as a subprocess whose output streams into the task log; default in-process.
    :param mlflow_conn_id: ``conveyor_mlflow`` connection, or ``None`` to leave tracking to the
        project's own configuration.
    :param scratch_data: give the run a private temporary ``data_root`` (removed afterwards), so
        runs of the same DAG can train at the same time; the project's catalog must read
        ``${runtime_params:data_root, ...}`` (as the example project in the repository does).
    :param reuse_validation: MLflow run ids of passing ``DataValidationOperator`` runs
        (templated; ``None`` entries are ignored): a data gate of the pipeline that meets their
        suite on their rows reuses their outcomes and logs that it did, instead of evaluating
        the same expectations again; rows that changed since (another hash) are validated.
    """

    template_fields = (
        "pipeline",
        "runtime_params",
        "node_names",
        "tags",
        "env",
        "conf_source",
        "project_path",
        "reuse_validation",
    )
    template_fields_renderers = {"runtime_params": "json"}
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#ffc800"

    def __init__(
        self,
        *,
        pipeline: str | None = None,
        runtime_params: dict[str, Any] | None = None,
        node_names: list[str] | None = None,
        tags: list[str] | None = None,
        env: str | None = None,
        conf_source: str | None = None,
        project_path: str | None = None,
        python_bin: str | None = None,
        kedro_conn_id: str = "kedro_default",
        mlflow_conn_id: str | None = "mlflow_default",
        scratch_data: bool = False,
        reuse_validation: list[str | None] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.runtime_params = runtime_params
        self.node_names = node_names
        self.tags = tags
        self.env = env
        self.conf_source = conf_source
        self.project_path = project_path
        self.python_bin = python_bin
        self.kedro_conn_id = kedro_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.scratch_data = scratch_data
        self.reuse_validation = reuse_validation

    def execute(self, context: Any) -> dict[str, Any]:
        from conveyor.hooks.kedro import KedroHook, KedroProject

        if self.project_path:
            project = KedroProject(Path(self.project_path), self.env, self.conf_source, self.python_bin)
        else:
            base = KedroHook(self.kedro_conn_id).get_conn()
            project = replace(
                base,
                env=self.env or base.env,
                conf_source=self.conf_source or base.conf_source,
                python_bin=self.python_bin or base.python_bin,
            )
        hook = None
        args: dict[str, Any] = {
            "project_path": str(project.project_path),
            "pipeline": self.pipeline or None,
            "env": project.env,
            "conf_source": project.conf_source,
            "params": self.runtime_params or {},
            "node_names": list(self.node_names or []),
            "tags": list(self.tags or []),
            "scratch_data": self.scratch_data,
            "reuse_validation": _run_ids(self.reuse_validation),
        }
        if self.mlflow_conn_id:
            from conveyor.hooks.mlflow import MlflowHook

            hook = MlflowHook(self.mlflow_conn_id)
            client = hook.get_conn()  # fails fast, naming the URI, and exports credentials for the run
            args.update(tracking_uri=hook.tracking_uri, registry_uri=hook.registry_uri)
            earlier = self._registered_by_earlier_try(client, context)
            if earlier is not None:
                return self._publish(context, hook, earlier)
        self.log.info(
            "kedro run: project %s, pipeline %s, env %s, params %s",
            project.project_path,
            args["pipeline"] or "__default__",
            project.env or "(default)",
            json.dumps(args["params"]),
        )
        if project.python_bin:
            result = self._run_subprocess(project.python_bin, args)
        else:
            from conveyor.core.kedro_runner import run_pipeline

            result = run_pipeline(**args)
        key = task_key(context)
        if hook is not None and key and result["model_version"]:
            client.set_model_version_tag(result["model_name"], result["model_version"], TASK_TAG, key)
        return self._publish(context, hook, result)

    def _registered_by_earlier_try(self, client: Any, context: Any) -> dict[str, Any] | None:
        """The version an earlier try of this task instance registered (a retry or a cleared task).

        Training again would register a duplicate of the same data and code under a new number;
        the re-run returns the existing version instead, so downstream tasks see the same result.
        """
        key = task_key(context)
        if not key:
            return None
        found = client.search_model_versions(f"tags.`{TASK_TAG}` = '{key}'")
        if not found:
            return None
        version = max(found, key=lambda v: int(v.version))
        self.log.info(
            "%s v%s was already registered by an earlier try of %s; not training again",
            version.name,
            version.version,
            key,
        )
        run = client.get_run(version.run_id)
        return {
            "session_id": None,
            "mlflow_run_id": version.run_id,
            "experiment_id": run.info.experiment_id,
            "model_name": version.name,
            "model_version": str(version.version),
        }

    def _publish(self, context: Any, hook: Any, result: dict[str, Any]) -> dict[str, Any]:
        self.log.info(
            "MLflow run %s, model %s version %s",
            result["mlflow_run_id"],
            result["model_name"],
            result["model_version"],
        )
        context["ti"].xcom_push(key="mlflow_run_id", value=result["mlflow_run_id"])
        context["ti"].xcom_push(key="model_version", value=result["model_version"])
        if hook is not None:
            publish_links(
                context,
                hook,
                run_id=result["mlflow_run_id"],
                name=result["model_name"],
                version=result["model_version"],
            )
        return result

    def _run_subprocess(self, python_bin: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run the same runner in another interpreter, its output line by line into the task log."""
        import conveyor
        from conveyor.core.kedro_runner import RESULT_MARKER

        package_root = str(Path(conveyor.__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p),
            "KEDRO_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
        }
        cmd = [python_bin, "-m", "conveyor.core.kedro_runner", json.dumps(args)]
        tail: deque[str] = deque(maxlen=30)
        result = None
        with subprocess.Popen(
            cmd,
            cwd=args["project_path"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip()
                if line.startswith(RESULT_MARKER):
                    result = json.loads(line.removeprefix(RESULT_MARKER))
                    continue
                tail.append(line)
                self.log.info("%s", line)
        if proc.returncode != 0 or result is None:
            raise RuntimeError(
                f"kedro run in {python_bin} exited with {proc.returncode}; last output:\n" + "\n".join(tail)
            )
        return result


def _run_ids(value: list[str | None] | str | None) -> list[str]:
    """The run ids of a rendered ``reuse_validation``: one id, or a list (``xcom_pull`` of several
    tasks) in which a task that logged no run left ``None``."""
    if isinstance(value, str):
        return [value] if value else []
    return [run_id for run_id in value or [] if run_id]
