"""Kedro projects made the way a new user makes one (``kedro new``), with a table from a wheel."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def project_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "CONVEYOR_"))}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    env["KEDRO_DISABLE_TELEMETRY"] = "1"  # kedro new would otherwise call its telemetry service
    return env


def conveyor(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The CLI as a user types it, in the project folder."""
    return subprocess.run(
        [str(BIN / "conveyor"), *args],
        cwd=project,
        env=env or project_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def kedro_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kedro-new")
    subprocess.run(
        [str(BIN / "kedro"), "new", "--name", "clinic", "--tools", "data", "--example", "n"],
        cwd=root,
        env=project_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return root / "clinic"


@pytest.fixture
def new_project(tmp_path: Path, kedro_template: Path) -> Callable[[str], Path]:
    """A fresh copy of the ``kedro new`` project whose catalog has ``patients``: one of
    scikit-learn's bundled tables (diabetes: regression, breast_cancer: binary, iris: 3 classes)."""
    import shutil

    def make(table: str = "diabetes") -> Path:
        from sklearn import datasets

        project = tmp_path / "clinic"
        shutil.copytree(kedro_template, project)
        frame = getattr(datasets, f"load_{table}")(as_frame=True).frame
        frame.to_csv(project / "data" / "01_raw" / "patients.csv", index=False)
        (project / "conf" / "base" / "catalog.yml").write_text(
            "patients:\n  type: pandas.CSVDataset\n  filepath: data/01_raw/patients.csv\n"
        )
        return project

    return make
