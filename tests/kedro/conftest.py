"""A private copy of the Kedro project's conf per test, so runs never write into the project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2] / "kedro_project"


def write_local(conf: Path, name: str, content: dict) -> None:
    (conf / "local" / f"{name}.yml").write_text(yaml.safe_dump(content))


@pytest.fixture
def kedro_conf(tmp_path: Path) -> Path:
    """conf/ copied with ``data_root`` pointing at this test's folder; add overrides in conf/local."""
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    write_local(conf, "globals", {"data_root": str(tmp_path / "data")})
    return conf
