"""ml_ci and ml_cd on a real Airflow (PostgreSQL, scheduler, LocalExecutor, triggerer), a real MLflow
server and a real gateway, driven only through the REST API, as the UI does.

The tests run in file order and build on each other like a user's session: the first trained
challenger is approved into production; clearing its training task re-runs without a new
version and the second approval request it causes is refused; a backfill trains history without
touching production; a backfilled version is then approved and switched in blue-green; a
candidate with a mis-set decision threshold fails its canary on live labelled traffic, and that
ml_cd run ends failed although the champion was restored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from mlflow import MlflowClient

from conveyor.clients.airflow import AirflowClient, AirflowRequestError
from conveyor.clients.gateway import GatewayClientError
from conveyor.core import registry
from conveyor.demo.traffic import feature_columns, flights_traffic
from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer
from conveyor.local.replay import Replay

# Small slices and few epochs keep each training at seconds; the pipeline is the one of a full run.
QUICK = {"max_rows": 3000, "max_epochs": 5, "min_roc_auc": 0.55}
MODEL = "flight_delays"
CI_TASKS = ("validate_data", "train", "model_gate", "publish_challenger")


def _states(client: AirflowClient, dag_id: str, run_id: str) -> dict[str, str | None]:
    return {ti["task_id"]: ti["state"] for ti in client.task_instances(dag_id, run_id)}


def _versions(mlflow_server: MlflowServer) -> dict[str, str]:
    """version -> conveyor.partition tag of every registered version."""
    client = MlflowClient(mlflow_server.url)
    return {
        mv.version: mv.tags.get("conveyor.partition", "")
        for mv in client.search_model_versions(f"name='{MODEL}'")
    }


def _cd_runs(client: AirflowClient) -> list[dict]:
    return client.list_dag_runs("ml_cd", run_type=["asset_triggered"])


def _wait(what: str, probe, timeout: float = 300.0, poll: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f}s")
        time.sleep(poll)


def _pending_approval(client: AirflowClient, run_id: str) -> dict:
    """Wait until the run's approval task asks its question (what the Required Actions page lists)."""
    return client.wait_for_approval("ml_cd", run_id, timeout=420)


def _champion(mlflow_server: MlflowServer) -> tuple[str | None, int]:
    client = MlflowClient(mlflow_server.url)
    return registry.current_version(client, MODEL), len(registry.history(client, MODEL))


@pytest.fixture(scope="module")
def dags(airflow_client: AirflowClient, gateway: GatewayServer) -> Iterator[AirflowClient]:
    """Both DAGs parsed and switched on (ml_cd first, so ml_ci's first event reaches it)."""
    for dag_id in ("ml_cd", "ml_ci"):
        airflow_client.wait_for_dag(dag_id, timeout=180)
        airflow_client.unpause_dag(dag_id)
    yield airflow_client
    airflow_client.set_paused("ml_cd", True)


@pytest.fixture(scope="module")
def ci_run(dags: AirflowClient) -> dict:
    """One ml_ci run triggered like the UI form (params in conf, no logical date), watched to the end."""
    run = dags.trigger_dag_run("ml_ci", {**QUICK, "partitions": "2013-02"}, note="test")
    return dags.wait_for_run("ml_ci", run["dag_run_id"], timeout=600)


def test_params_reach_the_trigger_forms(dags: AirflowClient) -> None:
    ci = dags.dag_details("ml_ci")["params"]
    assert ci["partitions"]["value"] == "2013-01,2013-02,2013-03"
    assert "data interval" in ci["partitions"]["description"]
    assert ci["min_roc_auc"]["schema"]["maximum"] == 1
    cd = dags.dag_details("ml_cd")["params"]
    assert cd["strategy"]["value"] == "canary"
    assert cd["strategy"]["schema"]["enum"] == ["canary", "blue_green", "shadow"]
    assert cd["auto_approve"]["value"] is False


def test_a_bad_partition_is_refused_before_anything_runs(dags: AirflowClient) -> None:
    before = len(dags.list_dag_runs("ml_ci"))
    with pytest.raises(AirflowRequestError) as err:
        dags.trigger_dag_run("ml_ci", {"partitions": "March 2013"})
    assert "partitions" in str(err.value)
    assert len(dags.list_dag_runs("ml_ci")) == before


def test_a_triggered_run_validates_trains_gates_and_publishes(
    dags: AirflowClient, ci_run: dict, mlflow_server: MlflowServer
) -> None:
    run_id = ci_run["dag_run_id"]
    assert ci_run["state"] == "success", _states(dags, "ml_ci", run_id)
    assert _states(dags, "ml_ci", run_id) == dict.fromkeys(CI_TASKS, "success")
    trained = dags.xcom("ml_ci", run_id, "train")
    published = dags.xcom("ml_ci", run_id, "publish_challenger")
    assert published["version"] == trained["model_version"]
    assert published["gate_status"] == "passed"
    assert _versions(mlflow_server) == {trained["model_version"]: "2013-02"}
    report = dags.xcom("ml_ci", run_id, "validate_data")
    assert report["success"] is True


def test_the_challenger_event_starts_ml_cd_and_an_approval_puts_it_in_production(
    dags: AirflowClient, ci_run: dict, gateway: GatewayServer, mlflow_server: MlflowServer
) -> None:
    version = dags.xcom("ml_ci", ci_run["dag_run_id"], "publish_challenger")["version"]
    cd_run = _wait("asset-triggered ml_cd run", lambda: _cd_runs(dags), timeout=120)[0]
    run_id = cd_run["dag_run_id"]
    request = _pending_approval(dags, run_id)
    assert f"v{version}" in request["subject"]
    assert request["options"] == ["Approve", "Reject"]
    assert request["defaults"] == ["Reject"]

    dags.approve("ml_cd", run_id, "approve_production")
    finished = dags.wait_for_run("ml_cd", run_id, timeout=420)
    states = _states(dags, "ml_cd", run_id)
    assert finished["state"] == "success", states
    # First deployment: there is no stable version for a staging slot to sit beside.
    assert states["deploy_staging"] == "skipped"
    assert states["auto_approve"] == "skipped"
    assert states["rollout"] == states["promote_champion"] == "success"
    assert states["restore_champion"] == "skipped"
    assert _champion(mlflow_server) == (version, 1)
    with gateway.client() as client:
        assert client.deployment("flights")["slots"]["stable"]["model_version"] == version


def test_a_cleared_training_reruns_without_a_new_version_and_a_refusal_changes_nothing(
    dags: AirflowClient, ci_run: dict, gateway: GatewayServer, mlflow_server: MlflowServer
) -> None:
    run_id = ci_run["dag_run_id"]
    versions_before = _versions(mlflow_server)
    champion_before = _champion(mlflow_server)
    cd_runs_before = {r["dag_run_id"] for r in _cd_runs(dags)}

    dags.clear_task_instances("ml_ci", run_id, ["train"], include_downstream=True)
    _wait("ml_ci re-run to start", lambda: dags.task_instance("ml_ci", run_id, "train")["try_number"] == 2)
    rerun = dags.wait_for_run("ml_ci", run_id, timeout=600)
    assert rerun["state"] == "success", _states(dags, "ml_ci", run_id)
    assert _versions(mlflow_server) == versions_before, "the re-run registered another version"
    log = " ".join(str(line.get("event", "")) for line in dags.task_log("ml_ci", run_id, "train", 2))
    assert "already registered by an earlier try" in log

    # The re-published challenger asks for approval again; a person refuses it.
    new = _wait(
        "second ml_cd run", lambda: [r for r in _cd_runs(dags) if r["dag_run_id"] not in cd_runs_before]
    )
    cd_run_id = new[0]["dag_run_id"]
    _pending_approval(dags, cd_run_id)
    states = _states(dags, "ml_cd", cd_run_id)
    assert states["deploy_staging"] == states["smoke_test"] == "success"  # production exists now
    dags.reject("ml_cd", cd_run_id, "approve_production")
    finished = dags.wait_for_run("ml_cd", cd_run_id, timeout=300)
    states = _states(dags, "ml_cd", cd_run_id)
    assert finished["state"] == "success", states
    assert states["approve_production"] == "success"
    assert states["rollout"] == states["promote_champion"] == "skipped"
    assert _champion(mlflow_server) == champion_before, "a refused version changed the champion"
    with gateway.client() as client:
        slots = client.deployment("flights")["slots"]
    assert slots["stable"]["model_version"] == champion_before[0]
    assert "canary" not in slots


def test_a_backfill_trains_one_version_per_month_and_hands_nothing_to_ml_cd(
    dags: AirflowClient, mlflow_server: MlflowServer
) -> None:
    versions_before = _versions(mlflow_server)
    champion_before = _champion(mlflow_server)
    cd_runs_before = len(_cd_runs(dags))
    quick = {
        "max_rows": 2000,
        "max_epochs": 3,
        "min_roc_auc": 0.5,
        **dict.fromkeys(("roc_auc_tolerance", "f1_tolerance", "log_loss_tolerance"), 1.0),
    }
    backfill = dags.create_backfill(
        "ml_ci", "2013-01-01T00:00:00Z", "2013-03-01T00:00:00Z", max_active_runs=2, dag_run_conf=quick
    )
    assert (backfill["dag_id"], backfill["max_active_runs"]) == ("ml_ci", 2)
    runs = _wait(
        "three backfill runs",
        lambda: (r := dags.list_dag_runs("ml_ci", run_type=["backfill"])) and len(r) == 3 and r,
    )
    runs = [dags.wait_for_run("ml_ci", r["dag_run_id"], timeout=600) for r in runs]
    assert [r["state"] for r in runs] == ["success"] * 3, [(r["dag_run_id"], r["state"]) for r in runs]
    assert sorted(r["data_interval_start"][:7] for r in runs) == ["2013-01", "2013-02", "2013-03"]
    for r in runs:
        states = _states(dags, "ml_ci", r["dag_run_id"])
        assert states["train"] == "success"
        assert states["publish_challenger"] == "skipped"
    new = {v: p for v, p in _versions(mlflow_server).items() if v not in versions_before}
    assert sorted(new.values()) == ["2013-01", "2013-02", "2013-03"]
    assert len(_cd_runs(dags)) == cd_runs_before, "a backfill run reached ml_cd"
    assert _champion(mlflow_server) == champion_before


def test_an_approved_version_goes_through_staging_and_a_blue_green_switch(
    dags: AirflowClient, gateway: GatewayServer, mlflow_server: MlflowServer
) -> None:
    client = MlflowClient(mlflow_server.url)
    march = max(
        (
            mv
            for mv in client.search_model_versions(f"name='{MODEL}'")
            if mv.tags.get("conveyor.partition") == "2013-03"
        ),
        key=lambda mv: int(mv.version),
    )
    assert march.tags["conveyor.gate.status"] == "passed"
    champion, promotions = _champion(mlflow_server)
    run = dags.trigger_dag_run("ml_cd", {"model_version": march.version, "strategy": "blue_green"})
    run_id = run["dag_run_id"]
    _pending_approval(dags, run_id)
    dags.approve("ml_cd", run_id, "approve_production")
    finished = dags.wait_for_run("ml_cd", run_id, timeout=420)
    states = _states(dags, "ml_cd", run_id)
    assert finished["state"] == "success", states
    assert states["smoke_test"] == states["rollout"] == states["promote_champion"] == "success"
    smoke = dags.xcom("ml_cd", run_id, "smoke_test")
    assert smoke["version"] == march.version and smoke["problems"] == []
    assert _champion(mlflow_server) == (march.version, promotions + 1)
    assert registry.history(client, MODEL)[-1].previous_version == champion
    with gateway.client() as gw:
        deployment = gw.deployment("flights")
        assert deployment["slots"]["stable"]["model_version"] == march.version
        # The previous version stays warm for the rollback window, and until the window ends the
        # deployment refuses other changes (the next ml_cd run's staging included); a person who
        # is satisfied with the switch ends it early by promoting.
        assert deployment["rollout"]["state"] == "switched", deployment["rollout"]["transitions"]
        with pytest.raises(GatewayClientError, match="switched rollout"):
            gw.deploy_slot("flights", f"models:/{MODEL}/{march.version}", slot="staging")
        gw.rollout_action("flights", "promote")
        assert gw.deployment("flights")["rollout"]["state"] == "succeeded"


def test_a_canary_that_fails_its_analysis_is_restored_and_the_run_ends_failed(
    dags: AirflowClient, gateway: GatewayServer, mlflow_server: MlflowServer
) -> None:
    """The demo's bad candidate: the champion's settings with decision threshold 0.01 (every flight
    "delayed"). Its ROC AUC passes the gate; its decisions, chance on balanced accuracy, do not
    pass the canary's online metric on labelled traffic."""
    champion_before = _champion(mlflow_server)
    cd_runs_before = {r["dag_run_id"] for r in _cd_runs(dags)}
    conf = {"partitions": "2013-03", "max_rows": 2000, "max_epochs": 3, "min_roc_auc": 0.5}
    loose = dict.fromkeys(("roc_auc_tolerance", "f1_tolerance", "log_loss_tolerance"), 1.0)
    ci = dags.trigger_dag_run("ml_ci", {**conf, **loose, "decision_threshold": 0.01})
    ci = dags.wait_for_run("ml_ci", ci["dag_run_id"], timeout=600)
    assert ci["state"] == "success", _states(dags, "ml_ci", ci["dag_run_id"])
    version = dags.xcom("ml_ci", ci["dag_run_id"], "publish_challenger")["version"]
    new = _wait("ml_cd run", lambda: [r for r in _cd_runs(dags) if r["dag_run_id"] not in cd_runs_before])
    run_id = new[0]["dag_run_id"]
    _pending_approval(dags, run_id)
    # Enough labelled traffic that the 10 % step sees 30+ labels per 15 s analysis interval.
    traffic = flights_traffic("2013-03", max_rows=3000)
    with Replay(
        gateway.url,
        traffic,
        features=feature_columns(),
        label="delayed",
        deployment="flights",
        rate=50.0,
        feedback_delay_s=2.0,
        repeat=True,
    ) as replay:
        replay.wait_for(100, timeout=120)
        dags.approve("ml_cd", run_id, "approve_production")
        finished = dags.wait_for_run("ml_cd", run_id, timeout=600)
    states = _states(dags, "ml_cd", run_id)
    assert finished["state"] == "failed", states
    assert states["rollout"] == "failed" and states["promote_champion"] == "upstream_failed"
    assert states["restore_champion"] == "success" and states["fail_run"] == "failed"
    assert _champion(mlflow_server) == champion_before, "a rolled-back version changed the champion"
    with gateway.client() as client:
        deployment = client.deployment("flights")
    assert deployment["rollout"]["state"] == "rolled_back", deployment["rollout"]["transitions"]
    assert deployment["rollout"]["model_version"] == version
    assert "canary online balanced_accuracy 0.500" in deployment["rollout"]["transitions"][-1]["reason"]
    assert deployment["slots"]["stable"]["model_version"] == champion_before[0]
    assert "canary" not in deployment["slots"]
