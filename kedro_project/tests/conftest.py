"""Fixtures for node tests: small deterministic frames, no package data, no services."""

from __future__ import annotations

import pandas as pd
import pytest
from flight_frames import make_flights


@pytest.fixture
def flights() -> pd.DataFrame:
    return make_flights()
