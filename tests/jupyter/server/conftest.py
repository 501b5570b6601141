"""pytest-jupyter's server fixtures, only for this folder (its tornado loop must not meet Playwright)."""

from __future__ import annotations

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403


@pytest.fixture
def jp_server_config(conveyor_env):
    """The extension enabled, unauthenticated access forbidden, settings from the environment."""
    return {
        "ServerApp": {
            "jpserver_extensions": {"conveyor_jupyter": True},
            "allow_unauthenticated_access": False,
        }
    }
