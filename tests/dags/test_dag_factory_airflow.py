"""The second example model, ``examples/bike_rentals``, through its factory-built DAGs on the
session Airflow, beside the demo's: real PostgreSQL, scheduler, LocalExecutor and triggerer, the
session's MLflow server and the real gateway, driven only through the REST API.

``dags/bike_rentals.py`` builds ``bike_rentals__ml_ci``/``__ml_cd``/``__ml_monitor`` from the
project's own ``conf/base/conveyor.yml``. In file order, each step building on the previous one:
ml_ci runs the real Kedro project (through the ``kedro_bike_rentals`` connection, on a private
copy of its configuration) and the Conveyor plugin registers January; the first ml_cd run makes
it stable on the deployment ``bikes``; a February candidate passes the gate against that
champion and a canary judged by online MAE on labelled February traffic, and becomes stable;
October traffic, which the February model gets badly wrong, makes ml_monitor ask its own ml_ci
to retrain, on October. Nothing of it reaches the demo's DAGs, deployment or registered model.

While ml_ci trains, ml_cd stays paused: Airflow drops the challenger events of a paused DAG, so
every ml_cd run here is the manual one the test starts (``auto_approve``), none asset-triggered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from conveyor.clients.airflow import AirflowClient
from conveyor.core import registry
from conveyor.local.airflow import BIKE_RENTALS_PROJECT
from conveyor.local.gateway import GatewayServer
from conveyor.local.mlflow_server import MlflowServer
from conveyor.local.replay import Replay

MODEL = "bike_rentals"
CI, CD, MONITOR = (f"{MODEL}__{kind}" for kind in ("ml_ci", "ml_cd", "ml_monitor"))
DEPLOYMENT = "bikes"
DEMO = {"dags": ("ml_ci", "ml_cd", "ml_monitor"), "model": "flight_delays", "deployment": "flights"}
CI_TASKS = ("validate_data", "train", "model_gate", "publish_challenger")
# Each epoch takes milliseconds; capping them exercises the form field without changing the story
# (January stops early at 46 epochs anyway). One month per run.
QUICK = {"max_epochs": 60}
# A rollout state the gateway stays in until someone acts (``paused``) or for good.
ENDED = ("succeeded", "rolled_back", "failed", "paused")


def _states(client: AirflowClient, dag_id: str, run_id: str) -> dict[str, str | None]:
    return {ti["task_id"]: ti["state"] for ti in client.task_instances(dag_id, run_id)}


def _mlflow(mlflow_server: MlflowServer) -> MlflowClient:
    return MlflowClient(mlflow_server.url, mlflow_server.url)


def _month(month: str) -> pd.DataFrame:
    """The package's hours of ``month`` as a client sends them (complete rows), with the label."""
    from bike_rentals.schema import INPUTS, LABEL
    from bike_rentals.source import bikeshare_table, months, with_timestamps

    rows = months(with_timestamps(bikeshare_table()))[month]
    return rows[[*INPUTS, LABEL]].dropna().reset_index(drop=True)


def _replay(gateway: GatewayServer, rows: pd.DataFrame, **kwargs: Any) -> Replay:
    from bike_rentals.schema import INPUTS, LABEL

    return Replay(gateway.url, rows, features=INPUTS, label=LABEL, deployment=DEPLOYMENT, **kwargs)


def _data_files() -> dict[str, int]:
    """The working tree's ``data/`` of the project (git-ignored outputs of a person's own runs)."""
    data = BIKE_RENTALS_PROJECT / "data"
    return {str(p.relative_to(data)): p.stat().st_mtime_ns for p in sorted(data.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo_before(airflow_client: AirflowClient, gateway: GatewayServer, mlflow_server: MlflowServer) -> dict:
    """What the demo model had before this module: its DAGs' runs, deployment and versions."""
    with gateway.client() as gw:
        deployment = gw.deployment(DEMO["deployment"]) if gw.exists(DEMO["deployment"]) else None
    return {
        "runs": {d: {r["dag_run_id"] for r in airflow_client.list_dag_runs(d)} for d in DEMO["dags"]},
        "deployment": deployment and deployment["slots"],
        "versions": {
            v.version for v in _mlflow(mlflow_server).search_model_versions(f"name='{DEMO['model']}'")
        },
        "data": _data_files(),
    }


@pytest.fixture(scope="module")
def bike(airflow_client: AirflowClient, demo_before: dict) -> Iterator[AirflowClient]:
    """The six DAGs parsed; bike_rentals__ml_ci switched on (no scheduled run: its end date is
    2011-12-31). Every bike DAG is paused again afterwards, for the modules that follow."""
    for dag_id in (*DEMO["dags"], CI, CD, MONITOR):
        airflow_client.wait_for_dag(dag_id, timeout=180)
    airflow_client.unpause_dag(CI)
    yield airflow_client
    for dag_id in (CI, CD, MONITOR):
        airflow_client.set_paused(dag_id, True)


def _train(client: AirflowClient, partitions: str) -> dict:
    run = client.trigger_dag_run(CI, {**QUICK, "partitions": partitions}, note="bike_rentals test")
    return client.wait_for_run(CI, run["dag_run_id"], timeout=600)


def _version_of(client: AirflowClient, run: dict) -> str:
    states = _states(client, CI, run["dag_run_id"])
    assert run["state"] == "success" and states == dict.fromkeys(CI_TASKS, "success"), client.why(
        CI, run["dag_run_id"]
    )
    trained = client.xcom(CI, run["dag_run_id"], "train")
    published = client.xcom(CI, run["dag_run_id"], "publish_challenger")
    assert trained["model_name"] == published["model_name"] == MODEL
    assert published["version"] == trained["model_version"] and published["gate_status"] == "passed"
    return str(trained["model_version"])


@pytest.fixture(scope="module")
def january(bike: AirflowClient) -> dict:
    """bike_rentals__ml_ci triggered like the UI form on 2011-01, watched to the end."""
    return _train(bike, "2011-01")


def test_the_session_airflow_holds_both_models_and_the_bike_forms_follow_its_contract(
    bike: AirflowClient,
) -> None:
    assert bike.import_errors() == []
    ci = bike.dag_details(CI)["params"]
    assert ci["partitions"]["value"] == "2011-01,2011-02,2011-03"
    assert (ci["min_r2"]["value"], ci["rmse_tolerance"]["value"]) == (0.5, 5.0)  # the contract's gate
    assert "max_epochs" in ci and "min_roc_auc" not in ci and "max_rows" not in ci
    monitor = bike.dag_details(MONITOR)["params"]
    assert monitor["min_r2"]["value"] == 0.5 and "min_roc_auc" not in monitor
    assert bike.dag_details(CD)["params"]["strategy"]["value"] == "canary"
    assert bike.get_dag(CI)["is_paused"] is False and bike.get_dag(CD)["is_paused"] is True


def test_ml_ci_validates_trains_the_real_project_and_registers_january(
    bike: AirflowClient, january: dict, mlflow_server: MlflowServer
) -> None:
    version = _version_of(bike, january)
    run_id = january["dag_run_id"]
    report = bike.xcom(CI, run_id, "validate_data")
    # The DAG's gate runs the suite on the month without the per-run bounds (skipped, listed);
    # the pipeline's own gate node runs all of it.
    assert report["success"] is True and report["dataset"] == "bikeshare 2011-01"
    assert report["skipped"] and all("no value for parameter" in s for s in report["skipped"])
    client = _mlflow(mlflow_server)
    registered = client.get_model_version(MODEL, version)
    assert registered.tags["conveyor.partition"] == "2011-01"
    assert registered.tags["conveyor.airflow.task"].startswith(f"{CI}/")
    assert client.get_model_version_by_alias(MODEL, "challenger").version == version
    run = client.get_run(registered.run_id)
    assert client.get_experiment(run.info.experiment_id).name == MODEL  # the kedro: section's
    assert run.data.params["training.max_epochs"] == "60" and run.data.params["partitions"] == "2011-01"
    assert {"rmse", "mae", "r2", "baseline_rmse"} <= set(run.data.metrics)
    gate = bike.xcom(CI, run_id, "model_gate")
    assert gate["status"] == "passed" and gate["baseline_version"] is None  # nothing to compare yet


def test_the_first_ml_cd_run_makes_january_stable_on_its_own_deployment(
    bike: AirflowClient, january: dict, gateway: GatewayServer, mlflow_server: MlflowServer
) -> None:
    version = _version_of(bike, january)
    assert bike.list_dag_runs(CD) == []  # paused while ml_ci published: no asset-triggered run
    bike.unpause_dag(CD)
    run = bike.trigger_dag_run(CD, {"model_version": version, "auto_approve": True}, note="first")
    finished = bike.wait_for_run(CD, run["dag_run_id"], timeout=420)
    states = _states(bike, CD, run["dag_run_id"])
    assert finished["state"] == "success", bike.why(CD, run["dag_run_id"])
    assert states["deploy_staging"] == states["smoke_test"] == "skipped"  # nothing to stage beside
    assert states["infra_validate"] == states["auto_approve"] == states["rollout"] == "success"
    assert states["approve_production"] == states["restore_champion"] == states["fail_run"] == "skipped"
    with gateway.client() as gw:
        assert gw.deployment(DEPLOYMENT)["slots"]["stable"]["model_version"] == version
    assert registry.current_version(_mlflow(mlflow_server), MODEL) == version


def _wait_for_rollout(client: AirflowClient, gateway: GatewayServer, run_id: str, version: str) -> dict:
    """The rollout of ``version`` once it ended (or paused for a person); fails as soon as the ml_cd
    run ends without one, naming why."""
    deadline = time.monotonic() + 420
    with gateway.client() as gw:
        while True:
            rollout = gw.deployment(DEPLOYMENT).get("rollout") or {}
            if rollout.get("model_version") == version and rollout.get("state") in ENDED:
                return rollout
            if client.get_dag_run(CD, run_id)["state"] in ("success", "failed"):
                raise AssertionError(f"{CD} ended without a rollout of v{version}: {client.why(CD, run_id)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no finished rollout of v{version}: {client.why(CD, run_id)}")
            time.sleep(0.5)


def test_a_february_candidate_passes_its_canary_on_online_mae_and_becomes_stable(
    bike: AirflowClient, january: dict, gateway: GatewayServer, mlflow_server: MlflowServer
) -> None:
    """February's model against January's champion: the gate compares both on February's
    held-out hours; the canary compares their MAE on labelled February traffic, 50 rows/s with
    each label 2 s after its answer, so every 15 s measurement of the 10 % step has 30+ labels."""
    champion = _version_of(bike, january)
    bike.set_paused(CD, True)  # the challenger event must not start a second, unapproved ml_cd run
    february = _train(bike, "2011-02")
    bike.unpause_dag(CD)
    assert bike.list_dag_runs(CD, run_type=["asset_triggered"]) == []
    version = _version_of(bike, february)
    gate = bike.xcom(CI, february["dag_run_id"], "model_gate")
    assert gate["baseline_version"] == champion
    rmse = next(c for c in gate["checks"] if c["metric"] == "rmse")
    assert rmse["non_inferior_ok"] is True and rmse["candidate"] < rmse["baseline"]

    with _replay(gateway, _month("2011-02"), rate=50.0, feedback_delay_s=2.0, repeat=True) as replay:
        replay.wait_for(100, timeout=120)
        run = bike.trigger_dag_run(
            CD, {"model_version": version, "strategy": "canary", "auto_approve": True}, note="canary"
        )
        rollout = _wait_for_rollout(bike, gateway, run["dag_run_id"], version)
    # The replay stopped at once: what follows on stable comes from the monitoring test's traffic.
    assert rollout["state"] == "succeeded", rollout["transitions"]
    assert replay.stats.failed == 0, replay.stats.errors[:3]
    finished = bike.wait_for_run(CD, run["dag_run_id"], timeout=300)
    states = _states(bike, CD, run["dag_run_id"])
    assert finished["state"] == "success", bike.why(CD, run["dag_run_id"])
    assert states["deploy_staging"] == states["smoke_test"] == states["auto_approve"] == "success"
    assert states["rollout"] == states["promote_champion"] == "success"
    assert states["approve_production"] == states["restore_champion"] == states["fail_run"] == "skipped"

    analysed = [t["canary_weight"] for t in rollout["transitions"] if t["reason"].endswith("analysing")]
    assert analysed == [10, 50]
    # The measurements of the last analysed step (50 %): each compared the canary's online MAE on
    # labels with stable's, within the contract's 8 rentals/hour, and passed.
    assert len(rollout["analysis"]) == 2
    for measurement in rollout["analysis"]:
        assert measurement["verdict"] == "successful", measurement
        (online,) = [c for c in measurement["checks"] if c["name"] == "online_mae"]
        assert online["passed"] is True and online["value"] <= online["limit"], online
    with gateway.client() as gw:
        slots = gw.deployment(DEPLOYMENT)["slots"]
    assert slots["stable"]["model_version"] == version and "canary" not in slots
    client = _mlflow(mlflow_server)
    assert registry.current_version(client, MODEL) == version
    assert registry.history(client, MODEL)[-1].previous_version == champion


def test_ml_monitor_on_traffic_the_model_gets_wrong_asks_its_own_ml_ci_to_retrain(
    bike: AirflowClient, gateway: GatewayServer, mlflow_server: MlflowServer
) -> None:
    """October hours with their true counts: the February champion's RMSE there is about three
    times its held-out RMSE (the monitor allows 10 rentals/hour more), and its inputs (a month it
    never saw, autumn weather) are far from its reference sample. ml_monitor asks bike_rentals__ml_ci to
    retrain on the month the traffic replays (its retrain_partitions field), which trains and
    gates October; ml_cd is paused first, so the new challenger starts no rollout."""
    client = _mlflow(mlflow_server)
    champion = registry.current_version(client, MODEL)
    bike.set_paused(CD, True)
    cd_runs = {r["dag_run_id"] for r in bike.list_dag_runs(CD)}
    october = _month("2011-10")
    stats = _replay(gateway, october, rate=100.0, feedback_delay_s=1.0).run()
    assert stats.answered == len(october) and stats.failed == 0, stats.summary()
    assert set(stats.by_version) == {f"v{champion}/stable"}, stats.summary()
    assert stats.feedback_matched == len(october), stats.summary()

    bike.unpause_dag(MONITOR)
    run = bike.trigger_dag_run(
        MONITOR, {"inference_log_url": gateway.inference_log_url, "retrain_partitions": "2011-10"}
    )
    run_id = run["dag_run_id"]
    finished = bike.wait_for_run(MONITOR, run_id, timeout=600)
    states = _states(bike, MONITOR, run_id)
    assert finished["state"] == "success", bike.why(MONITOR, run_id)
    assert set(states.values()) == {"success"}, states
    performance = bike.xcom(MONITOR, run_id, "model_performance")
    assert performance["decision"] is True and performance["model_name"] == MODEL
    assert performance["model_version"] == champion
    assert "rmse=" in performance["reason"], performance["reason"]
    drift = bike.xcom(MONITOR, run_id, "data_drift")
    assert drift["decision"] is True, drift["reason"]
    # monitor.drift.max_unseen_share: 1 in the project's conveyor.yml: October, never a training
    # month, is tested as its own category (drift), not refused as wrong input.
    assert "Oct" in drift["result"]["unseen_categories"]["mnth"]
    assert "mnth" in drift["result"]["drifted_features"]

    (retrain,) = [
        r
        for r in bike.list_dag_runs(CI)
        if str(r["conf"].get("triggered_by", "")).startswith(f"{MONITOR}/{run_id}")
    ]
    # Airflow 3.3 marks a TriggerDagRunOperator's run as such; ml_ci takes its partitions from
    # the conf as for any run that is neither scheduled nor a backfill.
    assert retrain["conf"]["partitions"] == "2011-10" and retrain["run_type"] == "operator_triggered"
    retrained = bike.wait_for_run(CI, retrain["dag_run_id"], timeout=600)
    version = _version_of(bike, retrained)
    registered = client.get_model_version(MODEL, version)
    assert registered.tags["conveyor.partition"] == "2011-10"
    assert registered.tags["conveyor.gate.status"] == "passed"
    assert bike.xcom(CI, retrain["dag_run_id"], "model_gate")["baseline_version"] == champion
    assert registry.current_version(client, MODEL) == champion  # retrained, not deployed
    assert {r["dag_run_id"] for r in bike.list_dag_runs(CD)} == cd_runs


def test_nothing_reached_the_demo_model_or_the_working_tree(
    bike: AirflowClient, demo_before: dict, gateway: GatewayServer, mlflow_server: MlflowServer
) -> None:
    for dag_id in DEMO["dags"]:
        assert {r["dag_run_id"] for r in bike.list_dag_runs(dag_id)} == demo_before["runs"][dag_id]
    with gateway.client() as gw:
        slots = gw.deployment(DEMO["deployment"])["slots"] if gw.exists(DEMO["deployment"]) else None
        assert gw.deployment(DEPLOYMENT)["slots"]["stable"]["model_version"]
    assert slots == demo_before["deployment"]
    versions = {v.version for v in _mlflow(mlflow_server).search_model_versions(f"name='{DEMO['model']}'")}
    assert versions == demo_before["versions"]
    # Kedro ran on a private copy of the configuration and a scratch data_root, tracked by the
    # MLflow server: the project folder got no new files.
    assert _data_files() == demo_before["data"]
    assert not (BIKE_RENTALS_PROJECT / "mlflow.db").exists()
