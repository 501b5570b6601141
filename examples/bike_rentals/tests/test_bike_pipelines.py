"""``kedro run`` end to end in a temporary copy of the project, as a person would run it: the
outputs land under ``data_root``, and Conveyor's Kedro plugin (found through its entry point; the
project registers no hooks) records the run and registers a version in the copy's own MLflow store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from bike_frames import CONF, PROJECT, make_hours

from bike_rentals.pipelines.data_processing.nodes import model_view
from bike_rentals.schema import INPUTS, LABEL, TIMESTAMP


def _local_files(folder: str, names: list[str]) -> list[str]:
    """conf/local is each user's own: a copy starts with it empty, as a fresh checkout does."""
    return [n for n in names if n != ".gitkeep"] if Path(folder).name == "local" else []


def _copy_project(target: Path) -> Path:
    shutil.copytree(PROJECT / "conf", target / "conf", ignore=_local_files)
    shutil.copytree(
        PROJECT / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT / name, target / name)
    return target


def _kedro_run(project: Path, *params: str) -> subprocess.CompletedProcess:
    # No tracking URI from the caller: the plugin falls back to the project's kedro.tracking_uri.
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update(KEDRO_DISABLE_TELEMETRY="1", MLFLOW_DISABLE_TELEMETRY="true")
    return subprocess.run(
        [sys.executable, "-m", "kedro", "run", *(["--params", ",".join(params)] if params else [])],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One full run on the package's February 2011, its files in a scratch ``data_root``."""
    project = _copy_project(tmp_path_factory.mktemp("project"))
    scratch = tmp_path_factory.mktemp("scratch")
    result = _kedro_run(project, "partitions=2011-02", f"data_root={scratch}")
    assert result.returncode == 0, result.stderr[-3000:]
    return project, scratch


def test_the_whole_pipeline_leaves_every_output_under_data_root(finished: tuple[Path, Path]) -> None:
    project, scratch = finished
    assert not (project / "data").exists()
    lineage = json.loads((scratch / "02_intermediate/partition_lineage.json").read_text())
    assert lineage["partition"] == "2011-02" and lineage["rows"] == 649 and len(lineage["data_hash"]) == 64
    report = json.loads((scratch / "08_reporting/data_validation_report.json").read_text())
    assert report["success"] is True and report["skipped"] == []
    metrics = json.loads((scratch / "08_reporting/metrics.json").read_text())
    assert set(metrics) == {"rmse", "mae", "r2", "baseline_rmse", "baseline_mae", "baseline_r2", "eval_rows"}
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["rmse"] < 0.8 * metrics["baseline_rmse"] and metrics["r2"] > 0.3
    history = json.loads((scratch / "08_reporting/training_history.json").read_text())
    assert history[0]["epoch"] == 1 and len(history) >= 1
    assert (scratch / "06_models/demand_regressor.pt").is_file()
    for figure in ("predicted_vs_actual.png", "residuals.png"):
        assert (scratch / "08_reporting" / figure).read_bytes().startswith(b"\x89PNG")


def test_eval_set_and_reference_are_raw_inputs_and_label_of_the_right_hours(
    finished: tuple[Path, Path],
) -> None:
    _, scratch = finished
    data = scratch / "05_model_input"
    train, test = pd.read_parquet(data / "train_set.parquet"), pd.read_parquet(data / "test_set.parquet")
    eval_set, reference = (
        pd.read_parquet(data / "eval_set.parquet"),
        pd.read_parquet(data / "reference_sample.parquet"),
    )
    assert list(eval_set.columns) == list(reference.columns) == [*INPUTS, LABEL]
    pd.testing.assert_frame_equal(eval_set, model_view(test))
    assert train[TIMESTAMP].max() < test[TIMESTAMP].min()
    assert len(reference) == min(len(train), 2000)


def test_the_plugin_registers_the_run_with_its_contract_lineage_and_files(
    finished: tuple[Path, Path],
) -> None:
    from mlflow import MlflowClient

    from conveyor.core.contract import ModelContract
    from conveyor.core.tracking import (
        EVAL_SET_ARTIFACT,
        METRICS_ARTIFACT,
        REFERENCE_ARTIFACT,
        VALIDATION_REPORT_JSON,
    )

    project, scratch = finished
    store = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(store, store)
    (version,) = client.search_model_versions("name='bike_rentals'")
    assert client.get_model_version_by_alias("bike_rentals", "challenger").version == version.version
    lineage = json.loads((scratch / "02_intermediate/partition_lineage.json").read_text())
    assert version.tags["conveyor.partition"] == "2011-02"
    assert version.tags["conveyor.data_hash"] == lineage["data_hash"]
    stored = ModelContract.from_tag(version.tags["conveyor.contract"])
    declared = ModelContract.from_file(CONF / "conveyor.yml")
    assert stored.to_dict(with_extra=False) == declared.to_dict(with_extra=False)
    run = client.get_run(version.run_id)
    metrics = json.loads((scratch / "08_reporting/metrics.json").read_text())
    assert run.data.metrics["rmse"] == pytest.approx(metrics["rmse"])
    assert run.info.status == "FINISHED" and run.data.tags["conveyor.pipeline"] == "__default__"
    assert "data_root" not in run.data.params  # where files went is not a model parameter
    history = client.get_metric_history(run.info.run_id, "validation_rmse")
    assert len(history) == len(json.loads((scratch / "08_reporting/training_history.json").read_text()))
    logged = {
        a.path
        for folder in ("evaluation", "reference", "validation")
        for a in client.list_artifacts(run.info.run_id, folder)
    }
    assert {EVAL_SET_ARTIFACT, REFERENCE_ARTIFACT, METRICS_ARTIFACT, VALIDATION_REPORT_JSON} <= logged
    assert {"evaluation/predicted_vs_actual_plot.png", "evaluation/residuals_plot.png"} <= logged
    eval_set = pd.read_parquet(client.download_artifacts(run.info.run_id, EVAL_SET_ARTIFACT, str(scratch)))
    assert list(eval_set.columns) == [*INPUTS, LABEL]


def test_a_broken_month_stops_the_run_at_the_gate(tmp_path: Path) -> None:
    """The catalog's source swapped for a folder of monthly files, one hour's count corrupted:
    the run fails with the gate's report and trains nothing."""
    project = _copy_project(tmp_path / "project")
    months = tmp_path / "months"
    months.mkdir()
    broken = make_hours("2011-02-01", days=28)
    broken.loc[5, "bikers"] += 7
    broken.to_parquet(months / "2011-02.parquet")
    (project / "conf/local/catalog.yml").write_text(
        "bikeshare:\n"
        "  type: partitions.PartitionedDataset\n"
        f"  path: {months}\n"
        "  dataset: pandas.ParquetDataset\n"
        "  filename_suffix: .parquet\n"
    )
    result = _kedro_run(project, "partitions=2011-02", f"data_root={tmp_path / 'scratch'}")
    assert result.returncode != 0
    assert "DataValidationError" in result.stderr
    assert "[CRITICAL] expect_column_values_to_be_null on column 'bikers'" in result.stderr
    assert not (tmp_path / "scratch/06_models").exists()
    # The plugin recorded the failed run and registered nothing.
    from mlflow import MlflowClient

    store = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(store, store)
    assert client.search_model_versions("name='bike_rentals'") == []
    (run,) = client.search_runs([client.get_experiment_by_name("bike_rentals").experiment_id])
    assert run.info.status == "FAILED" and "DataValidationError" in run.data.tags["conveyor.error"]
