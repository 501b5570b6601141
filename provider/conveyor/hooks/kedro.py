"""Connection ``conveyor_kedro`` → where a Kedro project lives and how to run it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook


@dataclass(frozen=True)
class KedroProject:
    """Everything a run needs to find the project; operator arguments override each field."""

    project_path: Path
    env: str | None = None
    conf_source: str | None = None
    python_bin: str | None = None


class KedroHook(BaseHook):
    """A Kedro project from an Airflow connection, so DAG files carry no paths.

    Extras: ``project_path`` (required: the folder with ``pyproject.toml``), ``env`` (Kedro
    environment, e.g. ``local``/``prod``), ``conf_source`` (a config folder or archive outside the
    project), ``python_bin`` (the interpreter of a separate environment for subprocess runs).
    """

    conn_name_attr = "kedro_conn_id"
    default_conn_name = "kedro_default"
    conn_type = "conveyor_kedro"
    hook_name = "Conveyor Kedro project"

    def __init__(self, kedro_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kedro_conn_id = kedro_conn_id

    def get_conn(self) -> KedroProject:
        extra = self.get_connection(self.kedro_conn_id).extra_dejson
        if not extra.get("project_path"):
            raise ValueError(f"connection {self.kedro_conn_id!r} has no 'project_path' extra")
        path = Path(extra["project_path"]).expanduser()
        if not (path / "pyproject.toml").is_file():
            raise FileNotFoundError(
                f"connection {self.kedro_conn_id!r}: {path} is not a Kedro project (no pyproject.toml)"
            )
        return KedroProject(
            project_path=path,
            env=extra.get("env") or None,
            conf_source=extra.get("conf_source") or None,
            python_bin=extra.get("python_bin") or None,
        )

    def test_connection(self) -> tuple[bool, str]:
        try:
            project = self.get_conn()
        except (ValueError, FileNotFoundError) as exc:
            return False, str(exc)
        return True, f"Kedro project at {project.project_path}"
