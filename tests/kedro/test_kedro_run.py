"""`kedro run` for real: a month of flights through the gate, torch training, MLflow tracking
and registration, against the session's MLflow server (and once against a local sqlite file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from conveyor.core.lineage import content_hash, git_commit
from flight_delays.data import flights_by_month
from flight_delays.schema import FEATURES, LABEL
from tests.kedro.conftest import PROJECT, use_model

pytestmark = pytest.mark.integration

QUICK = "data_processing.max_rows=3000,training.max_epochs=4"
CONTRACT_ARTIFACTS = {
    "reference/reference_sample.parquet",
    "validation/data_validation_report.json",
    "validation/data_validation_report.txt",
    "evaluation/metrics.json",
    "evaluation/roc_curve.png",
    "evaluation/confusion_matrix.png",
    "evaluation/eval_set.parquet",
}


def kedro_run(conf: Path, params: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--conf-source", str(conf), "--params", params],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _artifacts(client, run_id: str) -> set[str]:
    found = set()
    for top in client.list_artifacts(run_id):
        children = client.list_artifacts(run_id, top.path) if top.is_dir else [top]
        found |= {c.path for c in children}
    return found


def test_kedro_run_registers_a_tracked_challenger(kedro_conf: Path, mlflow_uri: str) -> None:
    import mlflow

    name = "kedro_cli_model"
    # The registered name is the contract's: an environment's conveyor.yml overrides the model section.
    use_model(kedro_conf, name)
    done = kedro_run(
        kedro_conf,
        f"partition=2013-02,{QUICK}",
        {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri},
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "epoch 1/4" in log and "val_auc" in log  # training progress is visible
    assert f"Registered {name} version 1" in log

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(name, "challenger")
    assert version.version == "1"
    february = flights_by_month()["2013-02"]()
    expected_tags = {
        "conveyor.partition": "2013-02",
        "conveyor.data_hash": content_hash(february),
        "conveyor.pipeline": "__default__",
    }
    assert expected_tags.items() <= version.tags.items()
    assert json.loads(version.tags["conveyor.contract"])["model"]["name"] == name
    assert len(version.tags["conveyor.params_hash"]) == 64
    # Others may commit while the run goes on: the tagged commit must be HEAD or one of its ancestors.
    tagged = version.tags["conveyor.git_commit"]
    assert len(tagged) == 40
    ancestor = ["git", "-C", str(PROJECT), "merge-base", "--is-ancestor", tagged, git_commit(PROJECT)]
    assert subprocess.run(ancestor).returncode == 0

    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert expected_tags.items() <= run.data.tags.items()
    assert run.data.tags["conveyor.git_commit"] == tagged
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "val_auc"} <= set(
        run.data.metrics
    )
    assert run.data.params["training.max_epochs"] == "4"
    assert run.data.params["partition"] == "2013-02"
    assert _artifacts(client, run.info.run_id) >= CONTRACT_ARTIFACTS

    eval_set = pd.read_parquet(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="evaluation/eval_set.parquet"
        )
    )
    assert list(eval_set.columns) == [*FEATURES, LABEL]
    model = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    assert model.metadata.get_input_schema().input_names() == list(FEATURES)
    predictions = model.predict(eval_set[list(FEATURES)])
    assert list(predictions.columns) == ["delay_probability", "delayed"]
    assert predictions["delay_probability"].between(0, 1).all()
    assert set(predictions["delayed"]) <= {0, 1}
    # The served decision uses the threshold training chose on the validation rows, logged with the run.
    threshold = float(run.data.params["decision_threshold"])
    assert run.data.params["decision_threshold_rule"] == "highest balanced accuracy on the validation split"
    assert run.data.metrics["decision_threshold"] == pytest.approx(threshold)
    assert (predictions["delayed"] == (predictions["delay_probability"] >= threshold)).all()
    assert run.data.metrics["f1"] == pytest.approx(
        f1_score(eval_set[LABEL], predictions["delayed"]), abs=1e-6
    )
    assert run.data.metrics["f1"] > 0.3
    assert roc_auc_score(eval_set[LABEL], predictions["delay_probability"]) > 0.6
    assert run.data.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(eval_set[LABEL], predictions["delay_probability"]), abs=1e-6
    )


def test_kedro_run_without_a_server_tracks_to_a_local_sqlite_file(kedro_conf: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    db = tmp_path / "tracking" / "mlflow.db"
    db.parent.mkdir()
    use_model(
        kedro_conf,
        "flight_delays",
        tracking_uri=f"sqlite:///{db}",
        artifact_location=str(tmp_path / "tracking" / "artifacts"),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = kedro_run(kedro_conf, "data_processing.max_rows=1500,training.max_epochs=2", env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    version = client.get_model_version_by_alias("flight_delays", "challenger")
    assert version.tags["conveyor.partition"] == "2013-01"  # the default partition in conf/base
    assert (tmp_path / "tracking" / "artifacts").is_dir()
    assert (tmp_path / "data" / "08_reporting" / "metrics.json").is_file()
