"""The installed package ships the prebuilt lab extension and enables the server extension."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import conveyor_jupyter


def _jupyter(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120, check=True
    )
    return re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # drop colour codes


def test_labextension_is_installed_prebuilt_and_enabled():
    out = _jupyter("labextension", "list")
    assert re.search(r"conveyor-jupyter v0\.1\.0 enabled\s+OK \(python, conveyor-ml\)", out), out
    share = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "conveyor-jupyter"
    assert list((share / "static").glob("remoteEntry.*.js"))
    assert (share / "schemas" / "conveyor-jupyter" / "plugin.json").exists()


def test_server_extension_is_enabled_and_loads():
    out = _jupyter("server", "extension", "list")
    assert re.search(r"conveyor_jupyter enabled", out), out
    assert re.search(r"Validating conveyor_jupyter\.\.\.\s+conveyor_jupyter\s+(\S+\s+)?OK", out), out


def test_labextension_paths_point_at_the_built_bundle():
    (entry,) = conveyor_jupyter._jupyter_labextension_paths()
    assert entry["dest"] == "conveyor-jupyter"
    built = Path(conveyor_jupyter.__file__).parent / entry["src"]
    assert (built / "package.json").exists()
