"""Broken candidates on the real MLflow server and real gateway processes: recorded, refused, fast.

Each candidate is a registered model that is wrong in one way (``tests/support/adversarial_model.py``,
or a sane one whose files were damaged in the artifact store afterwards). The gate must record a
``rejected`` decision naming the fault; infra validation and the staging smoke test must refuse it,
and a load error must end infra validation as soon as the sandbox tried the load.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from conveyor.core import registry
from conveyor.core.gate import (
    DECISION_ARTIFACT,
    REASON_TAG,
    STATUS_TAG,
    UNSCORABLE,
    GateError,
    rules_from_mapping,
    run_gate,
)
from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer
from conveyor.serving import infra
from tests.support.models import eval_frame, model_files, register_adversarial_model

pytestmark = pytest.mark.integration
RULES = rules_from_mapping({"roc_auc": {"threshold": 0.4}})
# Every damaged candidate, by what was done to it: a fault of the model code, or its files damaged.
FAULTS = (
    "raise_on_load",
    "raise_on_predict",
    "wrong_columns",
    "no_label_column",
    "too_few_rows",
    "flat_array",
    "out_of_range",
    "nan",
)
DAMAGE = ("corrupt_file", "missing_file")


@dataclass(frozen=True)
class Candidates:
    eval_set: pd.DataFrame
    sane: str  # registered model name of a servable code model of the same kind
    names: dict[str, str]  # fault or damage -> registered model name (challenger = the broken version)
    unsigned: str  # ``no_label_column`` without any signature: the expected columns are the defaults


def _damage(artifacts: Path, tracking_uri: str, name: str, kind: str) -> None:
    folder = model_files(artifacts, tracking_uri, name, "1")
    if kind == "corrupt_file":  # a truncated, binary-garbled upload of the model's code
        (folder / "adversarial_model.py").write_bytes(b"import mlflow\n\x00\x93garbage(")
    else:  # a lost file: the model's own description
        (folder / "MLmodel").unlink()


@pytest.fixture(scope="module")
def candidates(mlflow_server: MlflowServer) -> Candidates:
    url = mlflow_server.url
    tag = uuid.uuid4().hex[:6]
    frame = eval_frame().head(300)
    names = {}
    for fault in FAULTS:
        names[fault] = f"broken-{fault}-{tag}"
        register_adversarial_model(url, names[fault], fault, frame)
    for kind in DAMAGE:
        names[kind] = f"broken-{kind}-{tag}"
        register_adversarial_model(url, names[kind], "none", frame)
        _damage(mlflow_server.root / "artifacts", url, names[kind], kind)
    sane = f"sane-{tag}"
    register_adversarial_model(url, sane, "none", frame)
    unsigned = f"unsigned-{tag}"
    register_adversarial_model(url, unsigned, "no_label_column", frame, with_signature=False)
    return Candidates(frame, sane, names, unsigned)


@pytest.fixture
def client(mlflow_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)


# ---- the gate ----------------------------------------------------------------------------------

GATE_REASONS = {
    "raise_on_load": "does not load: ValueError: weights file is corrupt: bad magic number",
    "corrupt_file": "does not load: MlflowException: Failed to run user code",
    "missing_file": 'does not load: MlflowException: Could not find an "MLmodel" configuration file',
    "raise_on_predict": "raised on predict: RuntimeError: this model version is broken at prediction time",
    "wrong_columns": (
        "predict returned no 'delay_probability', 'delayed' column (columns: ['score', 'label'])"
    ),
    # The contract's decision column is an output too: a version without it breaks its contract.
    "no_label_column": "predict returned no 'delayed' column (columns: ['delay_probability'])",
    "too_few_rows": "predict returned 299 rows for 300 input rows",
    "flat_array": (
        "predict returned ndarray of shape (300,), not a table with the columns "
        "['delay_probability', 'delayed']"
    ),
    "out_of_range": "'delay_probability' is outside [0, 1] in 190 of 300 rows (min -0.85, max 1.85)",
    "nan": "'delay_probability' is NaN or infinite in 43 of 300 rows (e.g. nan)",
}


@pytest.mark.parametrize("fault", sorted(GATE_REASONS))
def test_gate_records_a_rejection_naming_the_fault(
    fault: str, candidates: Candidates, client: MlflowClient
) -> None:
    name = candidates.names[fault]
    decision = run_gate(client, name, RULES)
    expected = f"{UNSCORABLE}: {name} v1"
    assert decision.status == "rejected" and not decision.allows_promotion
    assert decision.reason.startswith(expected) and GATE_REASONS[fault] in decision.reason, decision.reason
    assert decision.checks == [] and decision.eval_rows == 300
    # Recorded like any other verdict: version tags, run tags, the JSON artifact.
    version = client.get_model_version(name, "1")
    assert version.tags[STATUS_TAG] == "rejected" and version.tags[REASON_TAG] == decision.reason
    run_tags = client.get_run(version.run_id).data.tags
    assert run_tags[STATUS_TAG] == "rejected" and run_tags[REASON_TAG] == decision.reason
    local = client.download_artifacts(version.run_id, DECISION_ARTIFACT)
    recorded = json.loads(Path(local).read_text())
    assert (recorded["status"], recorded["reason"], recorded["gate_id"]) == (
        "rejected",
        decision.reason,
        decision.gate_id,
    )
    with pytest.raises(registry.GateNotPassedError):
        registry.promote(client, name, "1", reason="try", actor="test", expected_champion=None)
    assert registry.current_version(client, name) is None
    assert "rejected" in decision.render_table().splitlines()[-1].lower()


def test_a_forced_pass_does_not_promote_a_candidate_that_cannot_run(
    candidates: Candidates, client: MlflowClient
) -> None:
    name = candidates.names["raise_on_predict"]
    decision = run_gate(client, name, RULES, force_reason="hotfix, ship it", actor="alice")
    assert decision.status == "rejected" and decision.forced_by is None
    assert decision.reason.endswith("(forced pass asked by alice not applied: hotfix, ship it)")
    assert client.get_model_version(name, "1").tags[STATUS_TAG] == "rejected"


def test_a_broken_champion_is_an_error_and_the_candidate_keeps_no_verdict(
    candidates: Candidates, client: MlflowClient, mlflow_server: MlflowServer
) -> None:
    """The champion's fault must not become the candidate's rejection: it raises, nothing recorded."""
    name = f"champion-broken-{uuid.uuid4().hex[:6]}"
    broken = client.copy_model_version(f"models:/{candidates.names['raise_on_predict']}/1", name)
    client.set_registered_model_alias(name, "champion", broken.version)
    sane = client.copy_model_version(f"models:/{candidates.sane}/1", name)
    client.set_registered_model_alias(name, "challenger", sane.version)
    with pytest.raises(GateError) as caught:
        run_gate(client, name, RULES, eval_set=candidates.eval_set)
    message = str(caught.value)
    assert message.startswith(
        f"the champion ('champion') cannot be scored, so {name} v{sane.version} was not"
    )
    assert f"{name} v{broken.version} raised on predict: RuntimeError" in message
    assert STATUS_TAG not in client.get_model_version(name, sane.version).tags
    assert STATUS_TAG not in client.get_run(sane.run_id).data.tags


def test_an_eval_set_without_the_candidates_inputs_is_an_error_not_a_rejection(
    candidates: Candidates, client: MlflowClient
) -> None:
    name = candidates.sane
    frame = candidates.eval_set.drop(columns=["carrier", "distance"])
    with pytest.raises(GateError, match=r"evaluation set lacks the inputs \['carrier', 'distance'\] that"):
        run_gate(client, name, RULES, eval_set=frame)
    assert STATUS_TAG not in client.get_model_version(name, "1").tags


def test_the_sane_model_of_the_same_kind_passes(candidates: Candidates, client: MlflowClient) -> None:
    """The control: the harness itself does not make every candidate fail."""
    decision = run_gate(client, candidates.sane, RULES)
    assert decision.status == "passed", decision.reason
    assert [c.metric for c in decision.checks] == ["roc_auc"]


# ---- infra validation ----------------------------------------------------------------------------

INFRA_PROBLEMS = {
    "raise_on_load": "ValueError: weights file is corrupt: bad magic number",
    "corrupt_file": "failed to load at startup",
    "wrong_columns": "output lacks the column(s) 'delay_probability', 'delayed' the model must return "
    "(returned: ['label', 'score'])",
    "out_of_range": "rows 0..9: 'delay_probability' is outside [0, 1] in",
    "raise_on_predict": "HTTP 5",
}


def _validate(uri: str, tracking_uri: str, tmp_path: Path) -> tuple[infra.InfraReport, float]:
    rows = infra.sample_rows(uri, tracking_uri, 30)
    started = time.perf_counter()
    report = infra.validate(uri, tracking_uri, rows, workdir=tmp_path)
    return report, time.perf_counter() - started


@pytest.mark.parametrize("fault", sorted(INFRA_PROBLEMS))
def test_infra_validation_refuses_the_candidate_with_the_reason(
    fault: str, candidates: Candidates, mlflow_uri: str, tmp_path: Path
) -> None:
    report, seconds = _validate(f"models:/{candidates.names[fault]}@challenger", mlflow_uri, tmp_path)
    assert not report.passed
    assert any(INFRA_PROBLEMS[fault] in p for p in report.problems), report.problems
    print(f"infra validation of {fault}: {seconds:.1f}s, load {report.load_seconds}s")


def test_a_load_error_ends_infra_validation_in_seconds_with_the_error(
    candidates: Candidates, mlflow_uri: str, tmp_path: Path
) -> None:
    """The sandbox logs the load error and answers; validation must not wait out load_timeout_s."""
    uri = f"models:/{candidates.names['raise_on_load']}/1"
    rows = infra.sample_rows(uri, mlflow_uri, 10)
    started = time.perf_counter()
    report = infra.validate(uri, mlflow_uri, rows, load_timeout_s=300.0, workdir=tmp_path)
    seconds = time.perf_counter() - started
    print(f"infra validation of an unloadable model failed after {seconds:.1f}s")
    (problem,) = report.problems
    assert problem.startswith("load failed: gateway did not start: deployment(s) sandbox failed to load")
    assert "cannot load models:/" in problem and "weights file is corrupt: bad magic number" in problem
    assert report.requests == 0 and seconds < 60, seconds


def test_output_columns_come_from_the_versions_contract_not_its_signature(
    candidates: Candidates, mlflow_uri: str, tmp_path: Path
) -> None:
    """A version without an output signature is held to its contract all the same."""
    for name in (candidates.sane, candidates.unsigned, candidates.names["no_label_column"]):
        contract = infra.contract_of(f"models:/{name}/1")
        assert contract.outputs.required == ["delay_probability", "delayed"]
    report, _ = _validate(f"models:/{candidates.unsigned}/1", mlflow_uri, tmp_path)
    assert report.problems == [
        "rows 0..9: output lacks the column(s) 'delayed' the model must return "
        "(returned: ['delay_probability'])"
    ]


def test_infra_validation_needs_a_registered_version_with_a_contract(
    candidates: Candidates, client: MlflowClient, mlflow_uri: str
) -> None:
    run_id = client.get_model_version(candidates.sane, "1").run_id
    with pytest.raises(infra.InfraValidationError, match="is not a registered version"):
        infra.sample_rows(f"runs:/{run_id}/model", mlflow_uri, 5)
    bare = f"no-contract-{uuid.uuid4().hex[:6]}"
    copy = client.copy_model_version(f"models:/{candidates.sane}/1", bare)
    client.delete_model_version_tag(bare, copy.version, "conveyor.contract")
    with pytest.raises(infra.InfraValidationError, match=f"{bare} v1 has no conveyor.contract tag"):
        infra.sample_rows(f"models:/{bare}/1", mlflow_uri, 5)


def test_the_sane_model_passes_infra_validation(
    candidates: Candidates, mlflow_uri: str, tmp_path: Path
) -> None:
    report, _ = _validate(f"models:/{candidates.sane}@challenger", mlflow_uri, tmp_path)
    assert report.passed, report.problems
    assert (report.rows, report.model_version) == (30, "1")


# ---- the staging smoke test ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def staging_gateway(
    candidates: Candidates, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    server = GatewayServer(
        root=tmp_path_factory.mktemp("staging-gateway"),
        tracking_uri=mlflow_server.url,
        deployments={"flights": f"models:/{candidates.sane}/1"},
    )
    with server:
        yield server


@pytest.fixture
def connections(staging_gateway: GatewayServer, mlflow_conn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway_conn = {
        "conn_type": "conveyor_gateway",
        "host": staging_gateway.url,
        "password": staging_gateway.token,
    }
    monkeypatch.setenv("AIRFLOW_CONN_CONVEYOR_GATEWAY_DEFAULT", json.dumps(gateway_conn))


def _smoke(uri: str):
    from conveyor.operators.staging import SmokeTestOperator, StageModelOperator

    StageModelOperator(task_id="stage", deployment="flights", model_uri=uri).execute({})
    return SmokeTestOperator(task_id="smoke", deployment="flights", model_uri=uri, sample_rows=20).execute({})


def test_smoke_test_refuses_a_staged_version_without_its_output_columns(
    candidates: Candidates, connections: None
) -> None:
    from airflow.sdk.exceptions import AirflowException

    with pytest.raises(AirflowException) as caught:
        _smoke(f"models:/{candidates.names['wrong_columns']}/1")
    assert "output lacks the column(s) 'delay_probability', 'delayed' the model must return" in str(
        caught.value
    )
    with pytest.raises(AirflowException, match="output lacks the column\\(s\\) 'delayed'"):
        _smoke(f"models:/{candidates.unsigned}/1")
    report = _smoke(f"models:/{candidates.sane}/1")
    assert report["problems"] == [] and report["rows"] == 20


# ---- the gateway's startup ------------------------------------------------------------------------


def test_startup_load_error_ends_the_app_only_when_asked(candidates: Candidates, mlflow_uri: str) -> None:
    """Production keeps serving the deployments that loaded; a sandbox stops at the first load error."""
    from starlette.testclient import TestClient

    from conveyor.serving.gateway import GatewayConfig
    from conveyor.serving.server import StartupLoadError, build

    good = f"models:/{candidates.sane}/1"
    deployments = {"good": good, "bad": f"models:/{candidates.names['raise_on_load']}/1"}
    body = {"dataframe_records": infra.sample_rows(good, mlflow_uri, 2)}
    with TestClient(build(GatewayConfig(admin_token="t"), deployments, mlflow_uri)) as http:
        assert http.get("/ready").status_code == 200
        assert http.post("/deployments/good/invocations", json=body).status_code == 200
        assert http.post("/deployments/bad/invocations", json=body).status_code == 404
    app = build(GatewayConfig(admin_token="t"), deployments, mlflow_uri, fail_on_load_error=True)
    refused = r"deployment bad: cannot load models:/.*weights file is corrupt: bad magic number"
    with pytest.raises(StartupLoadError, match=refused), TestClient(app):
        pass
