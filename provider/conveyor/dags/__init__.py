"""The DAG factory: ``ml_ci``, ``ml_cd`` and ``ml_monitor`` for any model, from its ``conveyor.yml``.

A team's DAG file is a call, not a copy of the demo's DAGs::

    from conveyor.dags import build_dags

    build_dags("/opt/projects/bikes/conf/base/conveyor.yml", prefix=True)

The model contract (``model``, ``gate``, ``canary``) says what the model is; the ``airflow:``
section (``conveyor.dags.config``) how its loop runs. Every name the DAGs share with the rest of
the system comes from the model name: the asset ``model://<name>/challenger``, the deployment, the
retraining target, and, with ``prefix``, the DAG ids ``<name>__ml_ci`` etc., so two models in one
Airflow never cross. A DAG built inside a DAG file's import registers itself with that file
(Airflow's auto-registration); a file that should hold one DAG calls ``build_dag``.

Parsing stays cheap: this package imports operators and sensors, which import their heavy
libraries only when a task runs.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.dags.config import KINDS, DagSpec, load

if TYPE_CHECKING:
    from airflow.sdk import DAG

__all__ = ["KINDS", "build_dag", "build_dags", "contract_path", "load"]

# Overrides the conveyor.yml a DAG file names with ``contract_path``.
ENV_VAR = "CONVEYOR_YML"
_MODULES = {"ml_ci": "ci", "ml_cd": "cd", "ml_monitor": "monitor"}


def build_dags(conveyor_yml: str | Path, *, prefix: bool | None = None) -> dict[str, DAG]:
    """The three DAGs of the model in ``conveyor_yml``, by DAG id.

    ``prefix`` overrides ``airflow.prefix``: ``True`` gives ``<model>__ml_ci`` etc. (needed for a
    second model in the same Airflow), ``False`` the plain ``ml_ci``.
    """
    spec = load(conveyor_yml, prefix)
    return {spec.dag_id(kind): _build(spec, kind) for kind in KINDS}


def build_dag(conveyor_yml: str | Path, kind: str, *, prefix: bool | None = None) -> DAG:
    """One of the three (``kind`` is ``ml_ci``, ``ml_cd`` or ``ml_monitor``), for a file per DAG."""
    spec = load(conveyor_yml, prefix)
    return _build(spec, kind)


def contract_path(default: str | Path) -> Path:
    """``$CONVEYOR_YML`` when set, else ``default``: lets a deployment point the repository's DAG
    files at another project's contract without editing them."""
    return Path(os.environ.get(ENV_VAR) or default)


def _build(spec: DagSpec, kind: str) -> DAG:
    spec.dag_id(kind)  # refuses an unknown kind, naming the three
    # Imported on demand: a file holding only ml_cd never imports the training operators.
    return importlib.import_module(f"conveyor.dags.{_MODULES[kind]}").build(spec)
