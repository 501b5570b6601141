"""Shared fixtures: rows made in ``bike_frames`` and the project's own configuration."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
import yaml
from bike_frames import CONF, make_hours


@pytest.fixture
def hours() -> pd.DataFrame:
    return make_hours()


@pytest.fixture(scope="session")
def suite() -> dict[str, Any]:
    return json.loads((CONF / "gx" / "bikeshare_partition.json").read_text())


@pytest.fixture(scope="session")
def parameters() -> dict[str, Any]:
    """Every ``parameters*.yml`` of ``conf/base`` merged, as Kedro reads them."""
    merged: dict[str, Any] = {}
    for path in sorted(CONF.glob("parameters*.yml")):
        merged.update(yaml.safe_load(path.read_text()))
    return merged
