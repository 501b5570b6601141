"""Run a Kedro project's pipeline (or load one of its datasets) and say what it left in MLflow.

Airflow-free on purpose: ``KedroRunOperator`` calls ``run_pipeline`` in-process, and for a
project that lives in its own Python environment it runs this module there as
``python -m conveyor.core.kedro_runner '<json>'``, which prints the same result as its last
line. Real teams keep Airflow's dependencies and the project's apart; both paths share this code.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULT_MARKER = "CONVEYOR_KEDRO_RESULT "
# The runtime parameter that moves a run's files to a scratch folder (catalogs read it).
DATA_ROOT_PARAM = "data_root"
SCRATCH_PREFIX = "conveyor-kedro-data-"


def run_pipeline(
    project_path: str | Path,
    *,
    pipeline: str | None = None,
    env: str | None = None,
    conf_source: str | None = None,
    params: Mapping[str, Any] | None = None,
    node_names: list[str] | None = None,
    tags: list[str] | None = None,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    scratch_data: bool = False,
    reuse_validation: Sequence[str] = (),
) -> dict[str, Any]:
    """One ``KedroSession`` run; returns the MLflow run and model version the project's hooks logged.

    The run is found by the ``kedro.run_id`` tag (the session id) rather than "last active run",
    which in a long-lived process may belong to an earlier task.

    ``scratch_data`` gives the run a private, temporary ``data_root`` runtime parameter (the
    project's catalog reads it): concurrent runs (a backfill with ``max_active_runs`` > 1) then
    never read each other's intermediate files, and what matters outlives the folder in MLflow.

    ``reuse_validation`` names MLflow runs of passing validations (``DataValidationOperator``'s):
    a data gate of the pipeline that meets their suite on their rows takes their outcomes
    instead of evaluating it again (``conveyor.core.validation_record``).
    """
    params = dict(params or {})
    if scratch_data and DATA_ROOT_PARAM not in params:
        with scratch_folder() as scratch:
            return run_pipeline(
                project_path,
                pipeline=pipeline,
                env=env,
                conf_source=conf_source,
                params={**params, DATA_ROOT_PARAM: scratch},
                node_names=node_names,
                tags=tags,
                tracking_uri=tracking_uri,
                registry_uri=registry_uri,
                reuse_validation=reuse_validation,
            )
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from conveyor.core.validation_record import reusing

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(registry_uri or tracking_uri)
    path = Path(project_path).resolve()
    bootstrap_project(path)
    with (
        reusing(_records(reuse_validation)),
        KedroSession.create(
            project_path=path, env=env, conf_source=conf_source, runtime_params=params
        ) as session,
    ):
        session_id = session.session_id
        session.run(
            pipeline_names=[pipeline] if pipeline else None,
            node_names=node_names or None,
            tags=tags or None,
        )
    return _tracked(session_id)


def _records(run_ids: Sequence[str]) -> list[Any]:
    """The passing validations among ``run_ids`` (in the tracking server set for this run)."""
    if not run_ids:
        return []
    from mlflow import MlflowClient

    from conveyor.core.tracking import VALIDATION_REPORT_JSON
    from conveyor.core.validation_record import load_record

    client = MlflowClient()
    found = [load_record(client, run_id, VALIDATION_REPORT_JSON) for run_id in run_ids]
    return [record for record in found if record is not None]


@contextmanager
def scratch_folder(root: str | None = None) -> Iterator[str]:
    """A private ``data_root`` for one run, removed afterwards, also when the run fails.

    A run killed outright (SIGKILL on a task timeout, OOM) cannot remove its folder, and a
    training run's intermediate data is large; the next run on this host removes the folders
    whose run is gone. The name carries host and pid, so a folder is only removed once its own
    process is known to have ended, never one of a live run (nor of another host sharing it).
    """
    root = root or tempfile.gettempdir()
    own = f"{SCRATCH_PREFIX}{socket.gethostname()}-"
    for folder in Path(root).glob(f"{own}*"):
        pid = folder.name.removeprefix(own).partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"{own}{os.getpid()}-", dir=root) as scratch:
        yield scratch


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _tracked(session_id: str) -> dict[str, Any]:
    """What the run logged to MLflow, or ``None``s when the project does not track this run."""
    import mlflow
    from mlflow import MlflowClient

    result: dict[str, Any] = {
        "session_id": session_id,
        "mlflow_run_id": None,
        "experiment_id": None,
        "model_name": None,
        "model_version": None,
    }
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`kedro.run_id` = '{session_id}'",
        output_format="list",
        max_results=1,
    )
    if not runs:
        return result
    run = runs[0]
    result.update(mlflow_run_id=run.info.run_id, experiment_id=run.info.experiment_id)
    versions = MlflowClient().search_model_versions(f"run_id = '{run.info.run_id}'")
    if versions:
        latest = max(versions, key=lambda v: int(v.version))
        result.update(model_name=latest.name, model_version=str(latest.version))
    return result


def load_dataset(
    project_path: str | Path,
    name: str,
    *,
    partition: str | None = None,
    env: str | None = None,
    conf_source: str | None = None,
) -> Any:
    """A dataset from the project's catalog; for a partitioned one, the partitions named in
    ``partition`` (``"2013-01"`` or ``"2013-01,2013-02"``) concatenated."""
    data = _catalog(Path(project_path).resolve(), env, conf_source).load(name)
    if is_partitioned(data):
        return select_partitions(name, data, partition)
    if partition:
        raise ValueError(f"dataset {name!r} is not partitioned, but partition {partition!r} was given")
    return data


def _catalog(path: Path, env: str | None, conf_source: str | None) -> Any:
    """The project's catalog built as ``KedroContext`` builds it (relative paths made the
    project's, credentials), without a session or a context: loading one dataset needs none of
    the project's hooks (the Conveyor plugin's would import the model's code, torch and MLflow)
    nor the context's parameter checks (which import every pipeline), seconds of a validation
    task on every run."""
    from kedro.config import MissingConfigException
    from kedro.framework.context.context import _convert_paths_to_absolute_posix
    from kedro.framework.project import settings
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(path)
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=conf_source or str(path / settings.CONF_SOURCE), env=env, **settings.CONFIG_LOADER_ARGS
    )
    try:
        credentials = loader["credentials"]
    except MissingConfigException:  # as KedroContext: no credentials files, no credentials
        credentials = {}
    catalog = _convert_paths_to_absolute_posix(project_path=path, conf_dictionary=loader["catalog"])
    return settings.DATA_CATALOG_CLASS.from_config(catalog=catalog, credentials=credentials)


def is_partitioned(data: Any) -> bool:
    """What a partitioned dataset loads as: partition id -> a function that loads it."""
    return isinstance(data, Mapping) and bool(data) and all(callable(v) for v in data.values())


def select_partitions(name: str, parts: Mapping[str, Callable[[], Any]], partition: str | None) -> Any:
    import pandas as pd

    if not partition:
        raise ValueError(f"dataset {name!r} is partitioned: name the partition(s) to load")
    keys = [k.strip() for k in partition.replace("+", ",").split(",") if k.strip()]
    missing = [k for k in keys if k not in parts]
    if missing:
        held = sorted(parts)
        raise ValueError(
            f"dataset {name!r} has no partition {', '.join(missing)} "
            f"(it holds {held[0]}..{held[-1]}, {len(held)} partitions)"
        )
    frames = [parts[k]() for k in keys]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def main(argv: list[str]) -> int:
    """Entry point of the subprocess mode: one JSON argument in, one marked JSON line out."""
    kwargs = json.loads(argv[0])
    result = run_pipeline(kwargs.pop("project_path"), **kwargs)
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
