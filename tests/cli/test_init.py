"""``conveyor init`` in a project fresh from ``kedro new``, run as a user runs it."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conveyor.core.contract import ModelContract
from conveyor.core.validation import validate_frame
from tests.cli.conftest import conveyor

pytestmark = pytest.mark.integration

REGRESSION = ["--dataset", "patients", "--label", "target", "--task", "regression", "--score", "progression"]
WRITTEN = ["conf/base/conveyor.yml", "conf/base/gx/patients_suite.json", "conf/base/catalog_conveyor.yml"]


def test_init_writes_a_contract_a_draft_suite_a_catalog_entry_and_a_dag_file(new_project) -> None:
    project = new_project("diabetes")
    done = conveyor(project, "init", *REGRESSION)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:4] == [f"wrote {p}" for p in [*WRITTEN, "dags/clinic.py"]]

    contract = ModelContract.from_file(project / "conf/base/conveyor.yml")
    assert (contract.name, contract.task, contract.label, contract.outputs.score) == (
        "clinic",
        "regression",
        "target",
        "progression",
    )
    patients = pd.read_csv(project / "data/01_raw/patients.csv")
    (rmse,) = contract.gate
    assert rmse.metric == "rmse" and rmse.threshold == pytest.approx(patients["target"].std(), rel=1e-2)
    assert contract.canary.online_metric == "mae"
    text = (project / "conf/base/conveyor.yml").read_text()
    assert "# REVIEW" in text and "TODO_model" in text  # commented, and what init cannot know is marked

    suite = json.loads((project / "conf/base/gx/patients_suite.json").read_text())
    assert suite["meta"]["conveyor"]["draft"] is True and suite["meta"]["conveyor"]["sample_rows"] == 442
    kinds = {e["type"] for e in suite["expectations"]}
    assert {"expect_column_to_exist", "expect_column_values_to_be_in_type_list"} <= kinds
    assert "expect_column_values_to_be_between" in kinds
    assert validate_frame(patients, suite).success
    broken = patients.assign(bmi=patients["bmi"].astype(str) + "kg").drop(columns=["s6"])
    failed = {(f.expectation, f.column) for f in validate_frame(broken, suite).critical}
    assert ("expect_column_to_exist", "s6") in failed
    assert ("expect_column_values_to_be_in_type_list", "bmi") in failed

    catalog = yaml.safe_load((project / "conf/base/catalog_conveyor.yml").read_text())
    assert catalog == {
        "patients_suite": {"type": "json.JSONDataset", "filepath": "conf/base/gx/patients_suite.json"}
    }
    dag_globals = runpy.run_path(str(project / "dags/clinic.py"))
    from conveyor.dags import build_dags

    assert sorted(build_dags(dag_globals["CONVEYOR_YML"])) == ["ml_cd", "ml_ci", "ml_monitor"]


def test_init_refuses_to_overwrite_and_then_writes_nothing(new_project) -> None:
    project = new_project("diabetes")
    (project / "dags").mkdir()
    (project / "dags" / "clinic.py").write_text("# the team's own DAG\n")
    done = conveyor(project, "init", *REGRESSION)
    assert done.returncode == 1
    assert "refusing to overwrite dags/clinic.py" in done.stderr
    assert (project / "dags" / "clinic.py").read_text() == "# the team's own DAG\n"
    assert not any((project / p).exists() for p in WRITTEN)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "progression"], "--label 'progression' is not a column of 'patients'"),
        (["--dataset", "visits"], "'visits' is not an entry of the project's catalog (it has: patients)"),
        (
            ["--task", "binary_classification"],
            "--label 'target' has 214 distinct values, a binary label has 2",
        ),
    ],
)
def test_init_names_what_does_not_fit_and_writes_nothing(new_project, args: list[str], message: str) -> None:
    project = new_project("diabetes")
    flags = dict(zip(REGRESSION[::2], REGRESSION[1::2], strict=True)) | dict(
        zip(args[::2], args[1::2], strict=True)
    )
    done = conveyor(project, "init", *[item for pair in flags.items() for item in pair])
    assert done.returncode == 1
    assert message in done.stderr, done.stderr
    assert not any((project / p).exists() for p in WRITTEN)
    assert not (project / "dags").exists()


def test_init_outside_a_kedro_project_says_so(tmp_path: Path) -> None:
    done = conveyor(tmp_path, "init", *REGRESSION)
    assert done.returncode == 1
    assert "has no pyproject.toml: run this inside a Kedro project" in done.stderr


def test_a_classifier_gets_its_task_rules_measured_on_its_label(new_project) -> None:
    project = new_project("iris")
    done = conveyor(
        project, "init", "--dataset", "patients", "--label", "target", "--task", "multiclass_classification",
        "--score", "top_probability", "--name", "species",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    contract = ModelContract.from_file(project / "conf/base/conveyor.yml")
    assert contract.name == "species" and contract.classes == ("0", "1", "2")
    assert contract.outputs.probabilities == ("probability_0", "probability_1", "probability_2")
    rules = {r.metric: r for r in contract.gate}
    assert rules["accuracy"].threshold == pytest.approx(1 / 3, abs=1e-3)  # always answering one class
    assert rules["macro_f1"].tolerance == 0.01
    assert (project / "dags" / "species.py").exists()
