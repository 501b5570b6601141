"""``%conveyor`` in a real IPython shell against a real Airflow (PostgreSQL) and MLflow server."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import capture_output

from conveyor.clients.airflow import AirflowClient
from conveyor.local.process import free_port
from conveyor_jupyter.views import RUN_MIME

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shell():
    return start_ipython()


@pytest.fixture
def ip(shell, conveyor_env):
    shell.run_line_magic("load_ext", "conveyor_jupyter")
    magics = shell.magics_manager.registry["ConveyorMagics"]
    magics.poll_interval = 0.5
    yield shell
    shell.run_line_magic("unload_ext", "conveyor_jupyter")


def run_count(client: AirflowClient, dag_id: str) -> int:
    return len(client.list_dag_runs(dag_id, limit=200))


def test_trigger_wait_shows_progress_then_success_and_logs_show_the_conf(ip, jupyter_airflow_client):
    with capture_output() as cap:
        result = ip.run_line_magic(
            "conveyor", """trigger conveyor_ui_params --conf '{"rows": 5}' --wait --timeout 240"""
        )
    assert result is None  # --wait shows the run in place instead of returning it
    bundles = [out.data for out in cap.outputs if RUN_MIME in out.data]
    assert len(bundles) >= 2, "the --wait output should have been updated while the run went on"
    final = bundles[-1][RUN_MIME]
    assert final["state"] == "success"
    assert {t["task_id"]: t["state"] for t in final["tasks"]} == {"prepare": "success", "report": "success"}
    assert final["links"]["Airflow"].endswith(
        f"/dags/conveyor_ui_params/runs/{quote(final['run_id'], safe='')}"
    )
    assert "success" in bundles[-1]["text/plain"] and "conveyor_ui_params" in bundles[-1]["text/html"]

    log = ip.run_line_magic("conveyor", "logs last prepare")
    assert "preparing 5 rows in fast mode" in repr(log)
    assert log.try_number == 1


def test_cell_magic_takes_yaml_conf_and_returns_at_once(ip, jupyter_airflow_client):
    view = ip.run_cell_magic("conveyor", "trigger conveyor_ui_params", "rows: 2\nmode: slow\n")
    assert view.state in ("queued", "running")  # returned before the run ended: the kernel is free
    bundle = view._repr_mimebundle_()
    assert bundle[RUN_MIME]["conf"] == {"rows": 2, "mode": "slow"}
    run = jupyter_airflow_client.get_dag_run("conveyor_ui_params", view.run_id)
    assert run["conf"] == {"rows": 2, "mode": "slow"}
    listed = ip.run_line_magic("conveyor", "runs conveyor_ui_params")
    assert view.run_id in [r.run_id for r in listed.runs]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("rows: 0", "'rows'"),  # minimum 1
        ("rows: many", "'rows'"),  # integer
        ("mode: turbo", "'mode'"),  # enum
        ("lerning_rate: 0.1", "'lerning_rate'"),  # not a param of the DAG
        ("- just\n- a list", "mapping"),
        ("{broken json", "neither valid JSON nor YAML"),
    ],
)
def test_bad_conf_is_rejected_before_submitting(ip, jupyter_airflow_client, body, field):
    before = run_count(jupyter_airflow_client, "conveyor_ui_params")
    with pytest.raises(UsageError, match=field):
        ip.run_cell_magic("conveyor", "trigger conveyor_ui_params", body)
    assert run_count(jupyter_airflow_client, "conveyor_ui_params") == before


def test_unknown_dag_is_a_clear_error(ip):
    with pytest.raises(UsageError, match=r"404.*no_such_dag|no_such_dag.*404"):
        ip.run_line_magic("conveyor", "trigger no_such_dag")


def test_airflow_down_names_the_url(ip, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("CONVEYOR_AIRFLOW_URL", url)
    with pytest.raises(UsageError, match="unreachable") as err:
        ip.run_line_magic("conveyor", "runs")
    assert url in str(err.value)


def test_rejected_login_says_so_without_echoing_the_password(ip, monkeypatch):
    monkeypatch.setenv("CONVEYOR_AIRFLOW_PASSWORD", "s3cret-wrong")
    with pytest.raises(UsageError, match="refused the login") as err:
        ip.run_line_magic("conveyor", "runs")
    assert "s3cret-wrong" not in str(err.value)
    with capture_output() as cap:
        ip.run_line_magic("conveyor", "connect --username admin")
    assert "s3cret-wrong" not in cap.stdout and "admin" in cap.stdout


def test_backfill_creates_one_run_per_day(ip, jupyter_airflow_client):
    view = ip.run_line_magic("conveyor", "backfill conveyor_ui_params --from 2013-01-01 --to 2013-01-02")
    backfill = view.backfill
    assert backfill["dag_id"] == "conveyor_ui_params"
    assert backfill["max_active_runs"] == 1
    assert backfill["from_date"].startswith("2013-01-01") and backfill["to_date"].startswith("2013-01-02")
    ids = [b["id"] for b in jupyter_airflow_client.list_backfills("conveyor_ui_params")]
    assert backfill["id"] in ids
    assert "backfill" in repr(view) and "/dags/conveyor_ui_params/backfills" in view._repr_html_()


def test_bad_backfill_dates_are_refused_by_airflow_with_the_field(ip):
    with pytest.raises(UsageError, match="from_date"):
        ip.run_line_magic("conveyor", "backfill conveyor_ui_params --from yesterday --to 2013-01-02")


def test_approve_answers_the_pending_approval_and_the_run_finishes(ip, jupyter_airflow_client):
    view = ip.run_line_magic("conveyor", "trigger conveyor_ui_approval")
    ref = f"conveyor_ui_approval/{view.run_id}"
    with pytest.raises(UsageError, match="pending approvals: none"):
        ip.run_line_magic("conveyor", f"approve {ref}")  # asked before the approval task is waiting
    status = _wait_for_approval(ip, ref)
    assert status.approvals[0]["subject"] == "Release candidate-1?"
    assert "awaiting approval: approve_release" in repr(status)
    # As a person would, answer after reading (AirflowClient.wait_for_approval: Airflow 3.3 race).
    jupyter_airflow_client.wait_for_approval(*ref.split("/", 1), timeout=60)
    ip.run_line_magic("conveyor", f"approve {ref}")
    final = jupyter_airflow_client.wait_for_run("conveyor_ui_approval", view.run_id, timeout=180)
    assert final["state"] == "success"
    states = {t["task_id"]: t["state"] for t in jupyter_airflow_client.task_instances(*ref.split("/", 1))}
    assert states["release"] == "success"


def test_cancel_stops_a_waiting_run_and_refuses_a_finished_one(ip, jupyter_airflow_client):
    view = ip.run_line_magic("conveyor", "trigger conveyor_ui_approval")
    ref = f"conveyor_ui_approval/{view.run_id}"
    _wait_for_approval(ip, ref)
    cancelled = ip.run_line_magic("conveyor", f"cancel {ref}")
    assert cancelled.state == "failed"
    with pytest.raises(UsageError, match="already finished"):
        ip.run_line_magic("conveyor", f"cancel {ref}")


def _wait_for_approval(ip, ref: str):
    import time

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = ip.run_line_magic("conveyor", f"status {ref}")
        if status.approvals:
            return status
        time.sleep(1)
    raise AssertionError(f"{ref} never reached its approval task: {status!r}")


def test_run_references_and_subcommands_are_checked(ip):
    with pytest.raises(UsageError, match="DAG_ID/RUN_ID"):
        ip.run_line_magic("conveyor", "status just-a-run-id")
    with pytest.raises(UsageError, match="unknown subcommand 'launch'"):
        ip.run_line_magic("conveyor", "launch ml_ci")
    with pytest.raises(UsageError, match="the following arguments are required: dag_id"):
        ip.run_line_magic("conveyor", "trigger")
    with capture_output() as cap:
        ip.run_line_magic("conveyor", "trigger -h")
    assert "--wait" in cap.stdout and "block until the run ends" in cap.stdout


def test_models_and_drift_read_the_registry(ip, mlflow_server, tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    from conveyor.core.contract import CONTRACT_TAG
    from tests.support.models import flight_contract

    client = MlflowClient(mlflow_server.url)
    name = "conveyor_jupyter_magics_model"
    client.create_registered_model(name)
    versions = []
    for auc in (0.70, 0.74):
        mlflow.set_tracking_uri(mlflow_server.url)
        with mlflow.start_run() as run:
            mlflow.log_metric("roc_auc", auc)
        tags = {"conveyor.gate.status": "passed", "conveyor.partition": "2013-01"}
        if auc > 0.7:  # the first version predates contracts: it is listed all the same
            tags[CONTRACT_TAG] = flight_contract(name).to_tag()
        mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id, tags=tags)
        versions.append(mv.version)
    client.set_registered_model_alias(name, "champion", versions[0])
    client.set_registered_model_alias(name, "challenger", versions[1])

    with pytest.raises(UsageError, match="which model"):
        ip.run_line_magic("conveyor", "models")
    project = tmp_path / "project"
    (project / "conf" / "base").mkdir(parents=True)
    (project / "conf" / "base" / "conveyor.yml").write_text(
        json.dumps(flight_contract(name).to_dict(with_extra=False))
    )
    monkeypatch.setenv("CONVEYOR_KEDRO_PROJECT", str(project))
    view = ip.run_line_magic("conveyor", "models")  # the project's own model
    rows = {v["version"]: v for v in view.summary["versions"]}
    assert rows[versions[0]]["aliases"] == ["champion"] and rows[versions[1]]["aliases"] == ["challenger"]
    assert rows[versions[1]]["gate"] == {"status": "passed"}
    assert rows[versions[1]]["lineage"] == {"partition": "2013-01"}
    assert rows[versions[0]]["contract"] is None
    assert rows[versions[1]]["contract"] == {
        "task": "binary_classification",
        "label": "delayed",
        "score": "delay_probability",
        "decision": "delayed",
        "gate": ["roc_auc", "f1", "log_loss"],
        "online_metric": "balanced_accuracy",
    }
    (comparison,) = view.summary["comparison"]
    assert comparison["metric"] == "roc_auc" and comparison["higher_is_better"] is True
    assert comparison["delta"] == pytest.approx(0.04)
    assert "champion vs challenger" in view._repr_html_()

    with pytest.raises(UsageError, match="no registered model named 'nope'"):
        ip.run_line_magic("conveyor", "models nope")
    with pytest.raises(UsageError, match="no drift report"):
        ip.run_line_magic("conveyor", f"drift {name}")

    from conveyor.core.drift.monitor import DATA_DRIFT
    from tests.support.drift import record_drift_check

    record_drift_check(client, name, versions[1])
    drift = ip.run_line_magic("conveyor", f"drift {name}")
    assert drift.summary["model_version"] == versions[1]
    assert drift.summary["plots"] == [f"{DATA_DRIFT}/feature_drift.png"]
    bundle = drift._repr_mimebundle_()
    assert bundle["image/png"] == next(iter(drift.plots.values()))
    assert "<td>temp</td>" in bundle["text/html"] and "drift=True" in bundle["text/plain"]
    rows = {row[0]: row for row in drift._rows()[1:]}
    assert rows["temp"][-1] == "True" and rows["distance"][-1] == "False"


def test_kedro_params_are_checked_before_anything_starts(ip, tmp_path):
    with pytest.raises(UsageError, match="must look like name=value"):
        ip.run_line_magic("conveyor", "kedro data_processing --params nonsense")
    with pytest.raises(UsageError, match="not a Kedro project"):
        ip.run_line_magic("conveyor", f"kedro data_processing --project {tmp_path}")
