"""A private copy of the Kedro project's conf per test, so runs never write into the project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2] / "kedro_project"


def write_local(conf: Path, name: str, content: dict) -> None:
    (conf / "local" / f"{name}.yml").write_text(yaml.safe_dump(content))


def use_model(conf: Path, name: str, **kedro: str) -> None:
    """Register under ``name`` and track in an experiment of that name, as a team would name its
    own model: conf/local/conveyor.yml overrides the base file's ``model`` and ``kedro`` sections."""
    base = yaml.safe_load((conf / "base" / "conveyor.yml").read_text())
    sections = {
        "model": {**base["model"], "name": name},
        "kedro": {**base["kedro"], "experiment": name, **kedro},
    }
    write_local(conf, "conveyor", sections)


@pytest.fixture
def kedro_conf(tmp_path: Path) -> Path:
    """conf/ copied with ``data_root`` pointing at this test's folder; add overrides in conf/local."""
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    write_local(conf, "globals", {"data_root": str(tmp_path / "data")})
    return conf
