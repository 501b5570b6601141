"""The generic parts name no demo column, model or deployment: they read a version's contract.

``flight_delays`` is the example, not the user. Its names may appear in ``kedro_project/``, in
the demo (``conveyor.demo``), in tests and in docs; anywhere else in what a team installs, a
literal ``delay_probability`` would be another model's column silently used for theirs.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_NAMES = re.compile(r"delay_probability|\bdelayed\b|flight_delays|[\"']flights[\"']")
# What a team installs: the provider, the Jupyter extension's Python and TypeScript, its settings.
SHIPPED = (
    ("provider/conveyor", "*.py"),
    ("jupyter_ext/conveyor_jupyter", "*.py"),
    ("jupyter_ext/src", "*.ts"),
    ("jupyter_ext/schema", "*.json"),
)
DEMO = ROOT / "provider" / "conveyor" / "demo"


def shipped_files() -> list[Path]:
    files = [path for folder, pattern in SHIPPED for path in sorted((ROOT / folder).rglob(pattern))]
    return [path for path in files if DEMO not in path.parents]


def test_the_shipped_code_is_scanned() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in shipped_files()}
    # A moved folder must not turn this test into one that scans nothing.
    assert {
        "provider/conveyor/core/gate.py",
        "jupyter_ext/src/panel.ts",
        "jupyter_ext/schema/plugin.json",
    } <= names
    # The pattern finds the names where they belong: a scan that matches nothing proves nothing.
    demo_lines = [line for path in DEMO.rglob("*.py") for line in path.read_text().splitlines()]
    assert any(DEMO_NAMES.search(line) for line in demo_lines)


def test_no_demo_name_outside_the_demo() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in shipped_files()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if DEMO_NAMES.search(line)
    ]
    assert not found, "demo names in generic code (read them from the model contract):\n" + "\n".join(found)
