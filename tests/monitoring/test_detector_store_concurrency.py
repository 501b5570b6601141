"""The detector store under concurrent checks: sensors that find no detector build at once, and
checks that arrive while a build is still uploading.

Every test registers its own version (a run holding only a small deterministic reference sample),
so it starts with no saved detector whatever the other monitoring tests built.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from conveyor.core.contract import CONTRACT_TAG
from conveyor.core.drift import DriftConfig, build_detector
from conveyor.core.drift.interface import STATE_FILE
from conveyor.core.drift.model_store import (
    FEATURES,
    REFERENCE_ARTIFACT,
    detector_artifact_path,
    detector_tag,
    model_detector,
)
from tests.support.models import flight_contract

CHECKS = 6
RACE_S = 3.0
REFERENCE_ROWS = 20_000


def _reference(rows: int = REFERENCE_ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "temp": rng.normal(40, 10, rows),
            "distance": rng.gamma(2.0, 400.0, rows),
            "carrier": rng.choice(["AA", "B6", "DL", "UA"], rows),
            "delayed": rng.integers(0, 2, rows),
        }
    )


@pytest.fixture
def fresh_version(tmp_path: Path, mlflow_conn: str) -> tuple[MlflowClient, str, str]:
    """A new version of a new model whose run has a reference sample and no detector yet."""
    client = MlflowClient(mlflow_conn)
    name = f"detector-store-{uuid.uuid4().hex[:6]}"
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    sample = tmp_path / Path(REFERENCE_ARTIFACT).name
    _reference().to_parquet(sample, index=False)
    client.log_artifact(run_id, str(sample), str(Path(REFERENCE_ARTIFACT).parent))
    client.set_terminated(run_id)
    client.create_registered_model(name)
    # The flight contract: its label ``delayed`` is in the sample and is not an input to test.
    tags = {CONTRACT_TAG: flight_contract(name).to_tag()}
    version = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id, tags=tags).version
    return client, name, str(version)


def _race(client: MlflowClient, name: str, version: str, config: DriftConfig) -> list:
    """``CHECKS`` threads, started 50 ms apart, each checking in a loop for ``RACE_S`` seconds:
    the first find no detector and build one, later ones arrive while builds are uploading."""
    outcomes: list = []
    deadline = time.monotonic() + RACE_S

    def check(delay: float) -> None:
        time.sleep(delay)
        while time.monotonic() < deadline:
            try:
                outcomes.append(model_detector(client, name, version, FEATURES, config))
            except Exception as exc:  # a half-uploaded detector would land here
                outcomes.append(exc)

    threads = [threading.Thread(target=check, args=(0.05 * i,)) for i in range(CHECKS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("backend", ["alibi", "scipy"])
def test_concurrent_checks_never_load_a_half_saved_detector(
    fresh_version: tuple[MlflowClient, str, str], backend: str
) -> None:
    client, name, version = fresh_version
    config = DriftConfig(backend=backend)
    outcomes = _race(client, name, version, config)
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert errors == [] and len(outcomes) >= CHECKS
    assert all(d.config == config and d.reference.n_rows == REFERENCE_ROWS for d in outcomes)

    run_id = client.get_model_version(name, version).run_id
    chosen = client.get_run(run_id).data.tags[detector_tag(FEATURES, config)]
    builds = {a.path for a in client.list_artifacts(run_id, detector_artifact_path(FEATURES, config))}
    assert chosen in builds and len(builds) <= CHECKS
    # Once one build is recorded, every later check uses it: no new build, the tag stays.
    model_detector(client, name, version, FEATURES, config)
    assert {a.path for a in client.list_artifacts(run_id, detector_artifact_path(FEATURES, config))} == builds
    assert client.get_run(run_id).data.tags[detector_tag(FEATURES, config)] == chosen


def test_a_changed_configuration_is_rebuilt_and_then_reused(
    fresh_version: tuple[MlflowClient, str, str],
) -> None:
    client, name, version = fresh_version
    run_id = client.get_model_version(name, version).run_id
    first = model_detector(client, name, version, FEATURES, DriftConfig(backend="scipy"))
    tag = detector_tag(FEATURES, first.config)
    before = client.get_run(run_id).data.tags[tag]
    stricter = DriftConfig(backend="scipy", p_val=0.01)
    assert model_detector(client, name, version, FEATURES, stricter).config == stricter
    after = client.get_run(run_id).data.tags[tag]
    assert after != before
    assert model_detector(client, name, version, FEATURES, stricter).config == stricter
    assert client.get_run(run_id).data.tags[tag] == after


def test_a_build_interrupted_mid_upload_does_not_break_later_checks(
    fresh_version: tuple[MlflowClient, str, str], tmp_path: Path
) -> None:
    """A sensor killed while uploading (task timeout, OOM) leaves a detector without its state file."""
    client, name, version = fresh_version
    run_id = client.get_model_version(name, version).run_id
    config = DriftConfig(backend="scipy")
    partial = build_detector(_reference(), config).save(tmp_path / "partial")
    (partial / STATE_FILE).unlink()
    folder = detector_artifact_path(FEATURES, config)
    client.log_artifacts(run_id, str(partial), f"{folder}/{uuid.uuid4().hex}")
    client.log_artifacts(run_id, str(partial), folder)

    detector = model_detector(client, name, version, FEATURES, config)
    assert detector.config == config and detector.reference.n_rows == REFERENCE_ROWS
    assert set(detector.schema.features) == {"temp", "distance", "carrier"}  # the label is no input
    chosen = client.get_run(run_id).data.tags[detector_tag(FEATURES, config)]
    assert STATE_FILE in {Path(a.path).name for a in client.list_artifacts(run_id, chosen)}
