"""Conveyor's Kedro plugin: one MLflow run per ``kedro run``, a registered version at the end.

Kedro discovers ``conveyor_hooks`` through the ``kedro.hooks`` entry point, so a project adds
nothing to its ``settings.py``: it declares its model in ``conf/base/conveyor.yml`` and names, in
the ``kedro:`` section, the catalog entries to record. A project without that file (or without
the section) runs exactly as before.

Why a hook of its own rather than kedro-mlflow: whoever starts Kedro (an Airflow task, a
notebook, the CLI) may already own an MLflow run, and the hook then logs into it instead of
opening another; it registers only complete runs (model, metrics, eval set, reference sample),
checks the model against its contract before registering, and stores the contract with the
version, which the generic parts of Conveyor read back.

Kedro runs the hooks of every node in the process that started the session (sequential and
thread runners); one session at a time per process, as Kedro's own session store assumes.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

from conveyor.core.contract import CONTRACT_FILE, ContractError, ModelContract
from conveyor.kedro.config import KedroSection, kedro_section
from conveyor.kedro.recorder import RunRecorder

logger = logging.getLogger(__name__)

CONFIG_KEY = "conveyor"
CONFIG_PATTERNS = ["conveyor*"]
SOURCE = f"conf/<env>/{CONTRACT_FILE}"


class ConveyorHooks:
    """Reads the contract when the context is created and hands each run to a ``RunRecorder``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: tuple[ModelContract, KedroSection, Path, dict[str, Any]] | None = None
        self._catalog: Any = None
        self._run: RunRecorder | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._settings, self._catalog, self._run = None, None, None
        # Read (and refused if malformed) before anything trains.
        contract = read_contract(context.config_loader)
        if contract is None:
            return
        section = kedro_section(contract, SOURCE)
        if section is None:
            logger.warning(
                "%s has no kedro: section: Conveyor records and registers nothing for this project "
                "(docs/kedro.md, 'The Conveyor plugin')",
                SOURCE,
            )
            return
        section.model_logger()
        params = dict(context.params)
        self._settings = (contract, section, Path(context.project_path), params)

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        self._catalog = catalog

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if self._settings is None:
            return
        contract, section, project_path, params = self._settings
        _check_names(section, catalog)
        self._run = RunRecorder(contract, section, project_path, params, catalog)
        self._run.start(run_params)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any) -> None:
        if self._run is not None:
            with self._lock:
                self._run.dataset_loaded(dataset_name, data)

    @hook_impl
    def after_node_run(self, node: Any, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        if self._run is not None:
            with self._lock:
                self._run.node_outputs(outputs)

    @hook_impl
    def on_node_error(self, error: Exception) -> None:
        if self._run is not None:
            with self._lock:
                self._run.node_failed(error)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            run.finish()

    @hook_impl
    def on_pipeline_error(self, error: Exception) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            run.fail(error)


def read_contract(loader: Any) -> ModelContract | None:
    """The project's contract, read through its config loader (so ``--conf-source`` and
    environments apply to ``conveyor.yml`` as to the rest of ``conf/``); ``None`` without one."""
    patterns = getattr(loader, "config_patterns", None)
    if isinstance(patterns, dict):
        patterns.setdefault(CONFIG_KEY, CONFIG_PATTERNS)
    try:
        raw = loader[CONFIG_KEY]
    except (KeyError, MissingConfigException):  # no conveyor.yml: not a Conveyor project
        return None
    return ModelContract.from_mapping(dict(raw), source=SOURCE) if raw else None


def unknown_names(section: KedroSection, catalog: Any) -> list[str]:
    """The section's names that are neither a catalog entry nor a dataset of a registered
    pipeline, as ``kedro.<field> 'name'``."""
    from kedro.framework.project import pipelines

    known = {name for pipeline in pipelines.values() for name in pipeline.datasets()}
    return [
        f"kedro.{field} {name!r}"
        for field, name in section.datasets().items()
        if name not in known and name not in catalog
    ]


def _check_names(section: KedroSection, catalog: Any) -> None:
    """A typo is refused before the first node runs, not noticed as a model that never registers."""
    unknown = unknown_names(section, catalog)
    if unknown:
        raise ContractError(
            f"{CONTRACT_FILE}: {', '.join(unknown)}: not a catalog entry nor a dataset of any pipeline"
        )


conveyor_hooks = ConveyorHooks()
