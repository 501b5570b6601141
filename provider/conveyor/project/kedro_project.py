"""A team's Kedro project opened as ``kedro run`` opens it: its settings, environments, catalog
(relative paths resolved against the project) and registered pipelines."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Conveyor's own Kedro plugin is left out of these sessions: it refuses a conveyor.yml that is
# half filled in before the catalog exists, and init and doctor are there to report exactly that.
_DISTRIBUTION = "conveyor-ml"


def quiet_logging() -> None:
    """For a command whose report is its output: the project logs warnings only (Kedro's logging
    and Airflow's, which reconfigures logging when the DAG config's schedules are parsed), and
    not Kedro's own deprecation notice about OmegaConf resolvers."""
    os.environ.setdefault("KEDRO_LOGGING_CONFIG", str(Path(__file__).with_name("logging.yml")))
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated")


class ProjectError(ValueError):
    """The folder is not a Kedro project, or its configuration does not load."""


@dataclass(frozen=True)
class KedroProject:
    path: Path
    package: str
    context: Any
    catalog: Any

    def pipeline_datasets(self) -> set[str]:
        """Every dataset name a registered pipeline reads or writes (node outputs need no entry)."""
        from kedro.framework.project import pipelines

        return {name for pipeline in pipelines.values() for name in pipeline.datasets()}

    def load(self, name: str) -> Any:
        if name not in self.catalog:
            entries = ", ".join(sorted(n for n in self.catalog if not _is_parameters(n))[:20])
            raise ProjectError(f"{name!r} is not an entry of the project's catalog (it has: {entries})")
        try:
            return self.catalog.load(name)
        except Exception as exc:
            raise ProjectError(f"catalog entry {name!r} does not load: {type(exc).__name__}: {exc}") from None


def _is_parameters(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


@contextmanager
def open_project(path: Path, env: str | None = None) -> Iterator[KedroProject]:
    from kedro.framework.project import settings
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    path = Path(path).resolve()
    if not (path / "pyproject.toml").is_file():
        raise ProjectError(f"{path} has no pyproject.toml: run this inside a Kedro project (kedro new)")
    try:
        metadata = bootstrap_project(path)
    except (RuntimeError, ValueError) as exc:
        raise ProjectError(f"{path} is not a Kedro project: {exc}") from None
    disabled = list(settings.DISABLE_HOOKS_FOR_PLUGINS)
    settings.set("DISABLE_HOOKS_FOR_PLUGINS", [*disabled, _DISTRIBUTION])
    try:
        with KedroSession.create(project_path=path, env=env) as session:
            try:
                context = session.load_context()
                catalog = context.catalog
            except Exception as exc:
                raise ProjectError(
                    f"the project's configuration does not load: {type(exc).__name__}: {exc}"
                ) from None
            yield KedroProject(path, metadata.package_name, context, catalog)
    finally:
        settings.set("DISABLE_HOOKS_FOR_PLUGINS", disabled)
