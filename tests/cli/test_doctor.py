"""``conveyor doctor`` on a project set up by ``conveyor init``: each problem named, on one run."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from conveyor.local.mlflow_server import MlflowServer
from tests.cli.conftest import conveyor, project_env

pytestmark = pytest.mark.integration

GATE = "data gate patients (kedro.data_gate, airflow.ci.data_gate)"
INIT = [
    "init",
    "--dataset",
    "patients",
    "--label",
    "target",
    "--task",
    "regression",
    "--score",
    "progression",
]
NODES = """
import mlflow
import pandas as pd


def log_model(model, eval_set):
    return mlflow.pyfunc.log_model(name="model", python_model=model)


def split(patients: pd.DataFrame):
    return patients.head(300), patients.tail(142)


def fit(train: pd.DataFrame):
    return float(train["target"].mean())


def score(mean: float, held_out: pd.DataFrame):
    return {"rmse": float(((held_out["target"] - mean) ** 2).mean() ** 0.5)}
"""
PIPELINE = """
from kedro.pipeline import Node, Pipeline

from .nodes import fit, score, split


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(split, "patients", ["train", "held_out"]),
        Node(fit, "train", "mean"),
        Node(score, ["mean", "held_out"], "metrics"),
    ])
"""


@pytest.fixture
def set_up(new_project) -> Path:
    """A project after `conveyor init` and a pipeline whose outputs the kedro: section names."""
    project = new_project("diabetes")
    assert conveyor(project, *INIT).returncode == 0
    done = conveyor(project, "doctor")
    assert done.returncode == 1  # the TODO_ names, before anything is filled in
    package = project / "src" / "clinic" / "pipelines" / "model"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .pipeline import create_pipeline\n")
    (package / "nodes.py").write_text(NODES)
    (package / "pipeline.py").write_text(PIPELINE)
    contract = project / "conf/base/conveyor.yml"
    document = yaml.safe_load(contract.read_text())
    document["kedro"].update(
        model="mean",
        log_model="clinic.pipelines.model.nodes:log_model",
        metrics="metrics",
        eval_set="held_out",
        reference_sample="train",
    )
    contract.write_text(yaml.safe_dump(document, sort_keys=False))
    return project


def _lines(done) -> dict[str, str]:
    """Finding by subject; a subject with several findings gets them joined by " | "."""
    found: dict[str, list[str]] = {}
    lines = done.stdout.splitlines()
    assert lines[0].startswith("conveyor doctor: ") and lines[-1].endswith(("problems", "problem")), lines
    for line in lines[1:-1]:
        assert line.startswith(("  ok  ", "  PROBLEM  ")), (
            f"not a finding: {line!r}"
        )  # nothing else on stdout
        status, _, rest = line.strip().partition("  ")
        subject, _, message = rest.strip().partition(": ")
        found.setdefault(subject, []).append(f"{status}: {message}")
    return {subject: " | ".join(findings) for subject, findings in found.items()}


def test_a_fresh_init_lists_exactly_what_is_left_to_fill_in(new_project) -> None:
    project = new_project("diabetes")
    assert conveyor(project, *INIT).returncode == 0
    done = conveyor(project, "doctor")
    assert done.returncode == 1 and done.stdout.splitlines()[-1] == "2 problems", done.stdout
    found = _lines(done)
    assert found["kedro names"].startswith("PROBLEM: kedro.model 'TODO_model', kedro.metrics 'TODO_metrics'")
    assert found["kedro.log_model"] == "PROBLEM: cannot import 'TODO_module': No module named 'TODO_module'"
    assert found[GATE].startswith("ok: suite patients_suite: 45 of 45 expectations met")
    assert "still marked a draft" in found[GATE]
    assert found["MLflow"].endswith("mlflow.db: created by the first run")
    assert found["airflow section"].startswith("ok: ml_ci on @weekly, ml_cd to deployment clinic (canary)")
    assert (
        "INFO" not in done.stderr and "register_new_resolver" not in done.stderr
    )  # the report is the output


def test_a_filled_in_project_passes_against_a_real_mlflow_server(
    set_up: Path, mlflow_server: MlflowServer
) -> None:
    env = project_env() | {"MLFLOW_TRACKING_URI": mlflow_server.url}
    done = conveyor(set_up, "doctor", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "no problems"
    found = _lines(done)
    assert found["kedro names"] == "ok: 6 names found in the catalog and pipelines"
    assert found["MLflow"] == f"ok: {mlflow_server.url} answers"


def test_each_problem_is_named_on_one_run(set_up: Path) -> None:
    suite_path = set_up / "conf/base/gx/patients_suite.json"
    suite = json.loads(suite_path.read_text())
    suite["expectations"].append({"type": "expect_column_to_exist", "kwargs": {"column": "visit_date"}})
    suite_path.write_text(json.dumps(suite))
    data = set_up / "data/01_raw/patients.csv"
    rows = data.read_text().splitlines()
    data.write_text("\n".join([rows[0], *rows[1:200]]) + "\n")  # fine so far
    contract = set_up / "conf/base/conveyor.yml"
    document = yaml.safe_load(contract.read_text())
    document["airflow"]["ci"]["data_gate"] = {"patients": "patient_suite"}
    contract.write_text(yaml.safe_dump(document, sort_keys=False))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    done = conveyor(set_up, "doctor", env=project_env() | {"MLFLOW_TRACKING_URI": dead})
    assert done.returncode == 1
    found = _lines(done)
    gate = found["data gate patients (kedro.data_gate)"]
    assert gate.startswith("PROBLEM: suite patients_suite names columns patients does not have: visit_date")
    assert found["MLflow"].startswith(f"PROBLEM: {dead} does not answer: ConnectError")
    assert found["data gate patients (airflow.ci.data_gate)"] == (
        "PROBLEM: 'patient_suite' is not an entry of the project's catalog (it has: patients, patients_suite)"
    )
    assert " | PROBLEM: 1 critical failures on 199 rows: [CRITICAL] expect_column_to_exist" in gate
    assert done.stdout.splitlines()[-1] == "4 problems"


def test_data_that_breaks_the_suite_is_a_problem_naming_the_column(set_up: Path) -> None:
    import pandas as pd

    data = set_up / "data/01_raw/patients.csv"
    frame = pd.read_csv(data)
    frame.loc[3, "bmi"] = "unknown"
    frame.drop(columns=["s6"]).to_csv(data, index=False)
    done = conveyor(set_up, "doctor")
    found = _lines(done)
    problem = found[GATE]
    assert problem.startswith("PROBLEM: suite patients_suite names columns patients does not have: s6")
    # the second finding on the same dataset: the suite run itself
    assert " | PROBLEM: 3 critical failures on 442 rows: " in problem
    assert "on column 's6'" in problem and "on column 'bmi'" in problem


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"model": {"colour": "blue"}}, "unknown key"),
        (
            {"gate": {"metrics": {"roc_auc": {"threshold": 0.6}}}},
            "gate.metrics.roc_auc does not fit regression",
        ),
        ({"kedro": {"model": "mean", "figure": "x"}}, "kedro"),
    ],
)
def test_a_bad_conveyor_yml_is_named(set_up: Path, edit: dict, message: str) -> None:
    contract = set_up / "conf/base/conveyor.yml"
    document = yaml.safe_load(contract.read_text())
    for key, value in edit.items():
        document[key] = {**document[key], **value} if key == "model" else value
    contract.write_text(yaml.safe_dump(document, sort_keys=False))
    done = conveyor(set_up, "doctor")
    assert done.returncode == 1
    assert message in done.stdout, done.stdout


def test_doctor_outside_a_kedro_project_says_so(tmp_path: Path) -> None:
    done = conveyor(tmp_path, "doctor")
    assert done.returncode == 1
    assert "has no pyproject.toml: run this inside a Kedro project" in done.stdout


@pytest.mark.parametrize("folder", ["kedro_project", "examples/bike_rentals"])
def test_the_bundled_projects_pass(folder: str) -> None:
    """Both examples, each suite on the partition its ml_ci's manual runs train on."""
    project = Path(__file__).resolve().parents[2] / folder
    done = conveyor(project, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    found = _lines(done)
    (gate,) = [finding for subject, finding in found.items() if subject.startswith("data gate ")]
    assert gate.startswith("ok: suite ") and "expectations met on" in gate
