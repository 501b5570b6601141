"""PublishChallengerOperator: the asset event carries the gated version; backfills emit nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from conveyor.operators.challenger import PublishChallengerOperator

PROBE = Path(__file__).parent / "probe_dags" / "publish_probe.py"


def _probe_module():
    spec = importlib.util.spec_from_file_location("publish_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_asset_event_names_the_version_the_gate_passed(airflow_db: Path) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    link = airflow_db / "dags" / "conveyor_dags_publish_probe.py"  # dag.test() needs it in the bundle
    if not link.exists():
        link.symlink_to(PROBE)
    probe = _probe_module()
    run = probe.dag.test()
    assert run.state == "success"
    with create_session() as session:
        events = session.query(AssetEvent).filter(AssetEvent.source_run_id == run.run_id).all()
        extras = [event.extra for event in events]
    assert extras == [
        {"model_name": "publish_probe", "version": "7", "gate_status": "passed", "source_run_id": run.run_id}
    ]


def test_a_backfill_run_publishes_nothing() -> None:
    probe = _probe_module()
    op = PublishChallengerOperator(task_id="p", asset=probe.PROBE_ASSET)
    outlet_events: dict = {}
    context = {"dag_run": SimpleNamespace(run_type="backfill"), "outlet_events": outlet_events}
    with pytest.raises(AirflowSkipException, match="backfill"):
        op.execute(context)
    assert outlet_events == {}


def test_without_a_gate_decision_it_fails_instead_of_publishing() -> None:
    probe = _probe_module()
    op = PublishChallengerOperator(task_id="p", asset=probe.PROBE_ASSET)
    ti = SimpleNamespace(xcom_pull=lambda task_ids: None)
    context = {"dag_run": SimpleNamespace(run_type="manual"), "ti": ti, "outlet_events": {}, "run_id": "r"}
    with pytest.raises(ValueError, match="model_gate"):
        op.execute(context)
    assert context["outlet_events"] == {}
