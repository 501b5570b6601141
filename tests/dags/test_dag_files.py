"""Every file in ``dags/`` loads in a DagBag with no import error, cheaply, and describes its params."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conveyor.local.airflow import REPO_ROOT

DAGS = REPO_ROOT / "dags"
DAG_FILES = sorted(DAGS.glob("*.py"))
# The demo's loop has a file per DAG; the second model's one file builds its three, prefixed.
EXPECTED = {
    "ml_ci.py": ["ml_ci"],
    "ml_cd.py": ["ml_cd"],
    "ml_monitor.py": ["ml_monitor"],
    "bike_rentals.py": ["bike_rentals__ml_cd", "bike_rentals__ml_ci", "bike_rentals__ml_monitor"],
}
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
    assert result["dags"] == EXPECTED[name]


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


def test_the_loops_of_both_models_are_present(parsed: dict[str, dict]) -> None:
    assert sorted(parsed) == sorted(EXPECTED)
    dag_ids = sorted(dag_id for result in parsed.values() for dag_id in result["dags"])
    assert dag_ids == sorted(dag_id for ids in EXPECTED.values() for dag_id in ids)


def test_every_kedro_connection_the_dags_use_is_defined_for_their_project() -> None:
    """``connection_env`` (the demo, ``make airflow``, the test Airflow) defines each DAG's
    ``kedro_conn_id``, pointing at the project whose contract built that DAG."""
    from airflow.dag_processing.dagbag import DagBag

    from conveyor.core.contract import ModelContract
    from conveyor.local.airflow import connection_env

    env = connection_env("http://127.0.0.1:5000")
    bag = DagBag(dag_folder=str(DAGS))
    used = {}
    for dag_id, dag in bag.dags.items():
        conn_id = dag.default_args["kedro_conn_id"]
        conn = json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])
        assert conn["conn_type"] == "conveyor_kedro"
        project = conn["extra"]["project_path"]
        contract = ModelContract.from_file(f"{project}/conf/base/conveyor.yml")
        assert contract.name in dag.tags, f"{dag_id} runs {project} through {conn_id}"
        used[conn_id] = contract.name
    assert used == {"kedro_default": "flight_delays", "kedro_bike_rentals": "bike_rentals"}
