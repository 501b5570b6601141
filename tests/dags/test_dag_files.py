"""Every file in ``dags/`` loads in a DagBag with no import error, cheaply, and describes its params."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conveyor.local.airflow import REPO_ROOT

DAGS = REPO_ROOT / "dags"
DAG_FILES = sorted(DAGS.glob("*.py"))
HEAVY = ("mlflow", "torch", "pandas", "great_expectations", "alibi_detect", "kedro", "sklearn")

# Parse one file the way the dag-processor does: a process that already imported Airflow, then
# the file. CPU time, not wall time: the machine is shared, and only our own work should count.
_PARSE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
before = set(sys.modules)
start = time.process_time()
bag = DagBag(dag_folder=sys.argv[1])
cpu = time.process_time() - start
new = {m.split(".")[0] for m in set(sys.modules) - before}
result = {"cpu_s": cpu, "errors": bag.import_errors, "dags": sorted(bag.dag_ids)}
print(json.dumps({**result, "new_modules": sorted(new)}))
"""


@pytest.fixture(scope="module")
def parsed() -> dict[str, dict]:
    out = {}
    for path in DAG_FILES:
        proc = subprocess.run(
            [sys.executable, "-c", _PARSE, str(path)], capture_output=True, text=True, check=True, timeout=180
        )
        out[path.name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.parametrize("name", [p.name for p in DAG_FILES])
def test_dag_file_loads_without_import_errors(parsed: dict[str, dict], name: str) -> None:
    result = parsed[name]
    assert result["errors"] == {}
    assert result["dags"] == [name.removesuffix(".py")]


@pytest.mark.parametrize("name", [p.name for p in DAG_FILES])
def test_dag_file_parses_in_under_a_second_without_heavy_imports(parsed: dict[str, dict], name: str) -> None:
    result = parsed[name]
    assert not set(HEAVY) & set(result["new_modules"]), "heavy import at parse time"
    assert result["cpu_s"] < 1.0, f"{name} took {result['cpu_s']:.2f}s of CPU to parse"


def test_every_param_has_a_description_for_the_trigger_form() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    for dag_id, dag in bag.dags.items():
        undescribed = [key for key in dag.params if not dag.params.get_param(key).description]
        assert not undescribed, f"{dag_id} params without description: {undescribed}"


def test_the_three_dags_of_the_loop_are_present(parsed: dict[str, dict]) -> None:
    dag_ids = sorted(dag_id for result in parsed.values() for dag_id in result["dags"])
    assert dag_ids == ["ml_cd", "ml_ci", "ml_monitor"]
