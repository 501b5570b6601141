"""What Airflow itself sees of the provider, and what parsing a DAG file costs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.operators.conftest import DAGS

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("mlflow", "pandas", "torch", "great_expectations", "kedro", "sklearn", "alibi_detect")


def _airflow_json(*commands: str) -> dict[str, list[dict]]:
    """``airflow providers <command> -o json`` for each command, run side by side (each takes seconds)."""
    procs = {
        c: subprocess.Popen(
            [sys.executable, "-m", "airflow", "providers", c, "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ,
        )
        for c in commands
    }
    out = {}
    for command, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr[-2000:]
        out[command] = json.loads(stdout)
    return out


def test_airflow_cli_lists_provider_hooks_and_links() -> None:
    out = _airflow_json("list", "hooks", "links")
    providers = {p["package_name"]: p for p in out["list"]}
    assert providers["conveyor-ml"]["version"] == "0.1.0"
    hooks = {h["connection_type"]: h["class"] for h in out["hooks"]}
    assert hooks["conveyor_mlflow"] == "conveyor.hooks.mlflow.MlflowHook"
    assert hooks["conveyor_kedro"] == "conveyor.hooks.kedro.KedroHook"
    links = {entry["extra_link_class_name"] for entry in out["links"]}
    assert {"conveyor.links.mlflow.MlflowRunLink", "conveyor.links.mlflow.MlflowModelVersionLink"} <= links


def test_connection_form_fields_come_from_provider_info() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviours = manager.field_behaviours
    assert behaviours["conveyor_mlflow"]["relabeling"]["host"] == "Tracking URI"
    widgets = manager.connection_form_widgets
    assert "extra__conveyor_mlflow__token" in widgets and "extra__conveyor_kedro__project_path" in widgets


@pytest.mark.parametrize("dag_file", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_dag_file_parses_fast_without_heavy_imports(dag_file: Path) -> None:
    """Cold interpreter, Airflow's SDK already imported (as in the dag-processor): time the file alone."""
    probe = f"""
import importlib.util, json, sys, time
import airflow.sdk
t = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", {str(dag_file)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
elapsed = time.perf_counter() - t
print(json.dumps({{"seconds": elapsed, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
        cwd=REPO,
        timeout=120,
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{dag_file.name}: parsed in {measured['seconds']:.3f}s")
    assert measured["heavy"] == [], f"{dag_file.name} imports {measured['heavy']} at parse time"
    # Design rule: < 1 s. The bound is generous for a loaded 2-core CI box; typical is ~0.05 s.
    assert measured["seconds"] < 1.0
