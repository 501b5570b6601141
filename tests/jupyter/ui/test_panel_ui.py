"""The Conveyor panel in real Chromium (Debian's, via Playwright) on a real JupyterLab server.

A user opens the panel, triggers a run from the form generated from the DAG's params, watches it
turn green, reads a task log, approves a pending approval, and sees a magic's output keep updating
while the kernel is idle. Screenshots go to ``var/test-artifacts/jupyter/``.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.local.process import free_port, log_tail, start_group, stop_group, wait_http
from tests.support.models import PROJECT

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RUN_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, jupyter_airflow, mlflow_server) -> Iterator[str]:
    """``jupyter lab`` with the installed extension, configured through the environment like a user's."""
    root = tmp_path_factory.mktemp("lab")
    port, token = free_port(), secrets.token_hex(16)
    env = {
        "CONVEYOR_AIRFLOW_URL": jupyter_airflow.url,
        "CONVEYOR_AIRFLOW_USERNAME": jupyter_airflow.username,
        "CONVEYOR_AIRFLOW_PASSWORD": jupyter_airflow.password,
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        # The panel shows this project's model (its conveyor.yml) when no model is set.
        "CONVEYOR_KEDRO_PROJECT": str(PROJECT),
        "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
    }
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
        f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
        "--allow-root", "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    log = root / "lab.log"
    proc = start_group(cmd, log, env=env, cwd=root)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=90, proc=proc)
        yield f"http://127.0.0.1:{port}/lab?token={token}"
    finally:
        stop_group(proc)
        print(log_tail(log, 20))


@pytest.fixture(scope="module")
def page(lab: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(lab)
        page.locator('li[data-id="conveyor-panel"]').click(timeout=120_000)
        yield page
        browser.close()


def _trigger_from_form(page, dag_id: str, values: dict[str, str]) -> str:
    page.locator(f'li[data-dag="{dag_id}"] button[data-action="open-trigger"]').click()
    form = page.locator(f'form.jp-Conveyor-form[data-dag="{dag_id}"]')
    for name, value in values.items():
        form.locator(f'[data-param="{name}"]').fill(value)
    form.locator('button[data-action="trigger"]').click()
    detail = page.locator(f'.jp-Conveyor-detail[data-run^="{dag_id}/"]')
    detail.wait_for(timeout=30_000)
    return detail.get_attribute("data-run")


def test_trigger_from_the_form_turns_green_and_shows_logs(page, artifacts_dir: Path, jupyter_airflow_client):
    page.locator('li[data-dag="conveyor_ui_params"]').wait_for(timeout=60_000)
    from playwright.sync_api import expect

    page.locator('li[data-dag="conveyor_ui_params"] button[data-action="open-trigger"]').click()
    form = page.locator('form.jp-Conveyor-form[data-dag="conveyor_ui_params"]')
    expect(form.locator('[data-param="mode"]')).to_have_value("fast")  # defaults from the DAG's params
    form.locator('[data-param="rows"]').fill("0")
    form.locator('button[data-action="trigger"]').click()
    expect(form.locator(".jp-Conveyor-form-status")).to_contain_text("'rows'", timeout=30_000)
    page.screenshot(path=artifacts_dir / "01-form-rejects-bad-rows.png")

    page.locator('form.jp-Conveyor-form [data-param="rows"]').fill("6")
    page.locator('form.jp-Conveyor-form button[data-action="trigger"]').click()
    detail = page.locator('.jp-Conveyor-detail[data-run^="conveyor_ui_params/"]')
    detail.wait_for(timeout=30_000)
    ref = detail.get_attribute("data-run")
    page.screenshot(path=artifacts_dir / "02-run-triggered.png")
    page.locator(f'.jp-Conveyor-detail[data-run="{ref}"][data-state="success"]').wait_for(
        timeout=RUN_TIMEOUT_MS
    )
    page.locator(f'tr[data-run="{ref}"] [data-state="success"]').wait_for(timeout=30_000)
    page.screenshot(path=artifacts_dir / "03-run-green.png")
    dag_id, run_id = ref.split("/", 1)
    assert jupyter_airflow_client.get_dag_run(dag_id, run_id)["conf"] == {"rows": 6}

    page.locator('.jp-Conveyor-detail li[data-task="report"] button[data-action="logs"]').click()
    log = page.locator('.jp-Conveyor-log[data-log="report"] pre')
    log.wait_for(timeout=30_000)
    assert "CONVEYOR-REPORT rows=6" in log.inner_text()
    page.screenshot(path=artifacts_dir / "04-task-log.png")


def test_approve_a_pending_approval_with_confirmation(page, artifacts_dir: Path, jupyter_airflow_client):
    ref = _trigger_from_form(page, "conveyor_ui_approval", {})
    approval = page.locator(f'.jp-Conveyor-detail[data-run="{ref}"] [data-approval="approve_release"]')
    approval.wait_for(timeout=RUN_TIMEOUT_MS)
    page.screenshot(path=artifacts_dir / "05-approval-pending.png")
    # A person reads the request before clicking; answering at once trips an Airflow 3.3 race
    # (see AirflowClient.wait_for_approval).
    jupyter_airflow_client.wait_for_approval(*ref.split("/", 1), timeout=60)
    approval.locator('button[data-action="approve"]').click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=10_000)
    page.screenshot(path=artifacts_dir / "06-approval-confirm.png")
    dialog.locator("button.jp-mod-warn").click()
    page.locator(f'.jp-Conveyor-detail[data-run="{ref}"][data-state="success"]').wait_for(
        timeout=RUN_TIMEOUT_MS
    )
    page.screenshot(path=artifacts_dir / "07-approved-green.png")
    dag_id, run_id = ref.split("/", 1)
    states = {t["task_id"]: t["state"] for t in jupyter_airflow_client.task_instances(dag_id, run_id)}
    assert states == {"build": "success", "approve_release": "success", "release": "success"}


def test_models_tab_compares_champion_and_challenger_and_drift_tab_shows_the_plot(
    page, artifacts_dir: Path, mlflow_server
) -> None:
    from mlflow import MlflowClient

    from tests.support.drift import record_drift_check
    from tests.support.models import register_flight_model

    client = MlflowClient(mlflow_server.url)
    # The project's model, which the panel shows by default: two real versions, one per alias.
    champion = register_flight_model(mlflow_server.url, "flight_delays", alias="champion")
    challenger = register_flight_model(mlflow_server.url, "flight_delays", alias="challenger", seed=3)
    auc = {mv.version: client.get_run(mv.run_id).data.metrics["roc_auc"] for mv in (champion, challenger)}
    record_drift_check(client, "flight_delays", challenger.version)

    page.locator('button[data-tab="models"]').click()
    row = page.locator('.jp-Conveyor-comparison tr[data-metric="roc_auc"]')
    row.wait_for(timeout=60_000)
    _, shown_champion, shown_challenger, shown_delta = row.locator("td").all_inner_texts()
    assert float(shown_champion) == pytest.approx(auc[champion.version], abs=1e-4)
    assert float(shown_challenger) == pytest.approx(auc[challenger.version], abs=1e-4)
    assert float(shown_delta) == pytest.approx(auc[challenger.version] - auc[champion.version], abs=1e-4)
    aliases = page.locator(f'.jp-Conveyor-versions tr[data-version="{champion.version}"] td').nth(1)
    assert "champion" in aliases.inner_text()
    # The version's contract names its task; the change is judged by the metric's direction.
    task = page.locator(f'.jp-Conveyor-versions tr[data-version="{champion.version}"] td.jp-Conveyor-task')
    assert task.inner_text() == "binary_classification"
    delta = auc[challenger.version] - auc[champion.version]
    better = "same" if delta == 0 else str(delta > 0).lower()
    assert row.locator("td").nth(3).get_attribute("data-better") == better
    page.screenshot(path=artifacts_dir / "08-models-champion-vs-challenger.png")

    page.locator('button[data-tab="drift"]').click()
    plot = page.locator("img.jp-Conveyor-plot")
    plot.wait_for(timeout=60_000)
    page.wait_for_function("() => document.querySelector('img.jp-Conveyor-plot').naturalWidth > 0")
    assert '"is_drift": true' in page.locator(".jp-Conveyor-drift-report").inner_text()
    page.screenshot(path=artifacts_dir / "09-drift-plot.png")
