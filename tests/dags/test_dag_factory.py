"""The DAG factory at parse level: two models in one dags folder never cross, the forms follow each
contract, the templates render what the tasks need, and every bad ``airflow:`` section is a
``ContractError`` naming its field (Hypothesis: never any other exception)."""

from __future__ import annotations

import copy
import datetime as dt
import re
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conveyor.core.contract import METRICS, ContractError, ModelContract
from conveyor.dags import build_dag, build_dags, contract_path, load
from conveyor.dags.ci import runtime_params
from conveyor.dags.config import ANALYSIS_SETTINGS, DEPLOYMENT_NAME, DRIFT_SETTINGS, AirflowConfig
from conveyor.dags.metrics import LABELS
from conveyor.local.airflow import REPO_ROOT

DEMO = REPO_ROOT / "kedro_project" / "conf" / "base" / "conveyor.yml"

# A second team's model: a regressor with daily partitions, two data gates and its own form field.
BIKES: dict[str, Any] = {
    "model": {"name": "bikes", "task": "regression", "label": "rentals", "outputs": {"score": "predicted"}},
    "gate": {"metrics": {"rmse": {"threshold": 40.0, "tolerance": 2.0}, "r2": {"threshold": 0.3}}},
    "canary": {"online_metric": "mae", "max_degradation": 5.0},
    "airflow": {
        "prefix": True,
        "ci": {
            "schedule": "0 0 * * *",
            "start_date": dt.date(2011, 1, 1),
            "partition": {
                "format": "%Y-%m-%d",
                "default": ["2011-01-01", "2011-01-02"],
                "runtime_param": "day",
            },
            "data_gate": {"rides": "rides_suite", "weather": "weather_suite"},
            "params": {
                "n_trees": {
                    "runtime_param": "model.n_trees",
                    "type": "integer",
                    "minimum": 1,
                    "description": "Trees in the forest (empty: the project's).",
                }
            },
        },
        "monitor": {"thresholds": {"mae": 30.0}, "drift": {"max_unseen_share": 1.0, "p_val": 0.01}},
    },
}


def _write(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "conf" / "base" / "conveyor.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _templates(task: Any) -> list[str]:
    """Every template string a task renders (nested ones included), as the text Airflow sees."""
    return [repr(getattr(task, name)) for name in task.template_fields]


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo's DAG files and a second model's one-file DAG folder entry, parsed by a DagBag."""
    from airflow.dag_processing.dagbag import DagBag

    root = tmp_path_factory.mktemp("two-models")
    bikes_yml = _write(root / "bikes", BIKES)
    folder = root / "dags"
    folder.mkdir()
    for name in ("ml_ci.py", "ml_cd.py", "ml_monitor.py"):
        text = (REPO_ROOT / "dags" / name).read_text()
        (folder / name).write_text(text.replace("Path(__file__).parents[1]", f"Path({str(REPO_ROOT)!r})"))
    (folder / "bikes.py").write_text(
        textwrap.dedent(f'''
            """Airflow DAGs of the bikes model: one call."""
            from conveyor.dags import build_dags

            build_dags({str(bikes_yml)!r})
        ''')
    )
    bag = DagBag(dag_folder=str(folder))
    return {"bag": bag, "bikes_yml": bikes_yml}


def test_two_models_in_one_folder_give_six_dags_that_never_cross(two_models: dict[str, Any]) -> None:
    bag = two_models["bag"]
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(
        ["ml_ci", "ml_cd", "ml_monitor", "bikes__ml_ci", "bikes__ml_cd", "bikes__ml_monitor"]
    )
    seen: dict[str, set[str]] = {"asset": set(), "deployment": set(), "retrain": set(), "variable": set()}
    for model, prefix, deployment in (("flight_delays", "", "flights"), ("bikes", "bikes__", "bikes")):
        ci, cd, monitor = (bag.dags[prefix + kind] for kind in ("ml_ci", "ml_cd", "ml_monitor"))
        uri = f"model://{model}/challenger"
        publish = ci.get_task("publish_challenger")
        assert [a.uri for a in publish.outlets] == [uri]
        assert [a.uri for a in cd.schedule] == [uri]
        trigger = monitor.get_task("trigger_ml_ci")
        assert trigger.trigger_dag_id == prefix + "ml_ci"
        assert monitor.get_task("retrain_request").triggered_by.startswith(prefix + "ml_monitor/")
        for task_id in ("deploy_staging", "smoke_test", "rollout", "restore_champion"):
            assert cd.get_task(task_id).deployment == deployment
        for task_id in ("infra_validate", "rollout"):
            assert cd.get_task(task_id).model_uri.startswith(f"models:/{model}/")
        assert cd.get_task("restore_champion").model_uri == f"models:/{model}@champion"
        assert cd.get_task("promote_champion").model_name == model
        assert ci.get_task("model_gate").model_name == model
        for task_id in ("data_drift", "model_performance"):
            assert monitor.get_task(task_id).model_name == model
        # Nothing of the other model appears in any template of this model's DAGs.
        other = "bikes" if model == "flight_delays" else "flight_delays"
        for dag in (ci, cd, monitor):
            assert model in dag.tags
            for task in dag.tasks:
                assert not any(other in text for text in _templates(task)), (dag.dag_id, task.task_id)
        variable = re.search(r"var\.value\.get\('([^']+)'", monitor.get_task("retrain_request").partitions)
        for key, value in (
            ("asset", uri),
            ("deployment", deployment),
            ("retrain", trigger.trigger_dag_id),
            ("variable", variable.group(1)),
        ):
            assert value not in seen[key], f"{key} {value} shared by two models"
            seen[key].add(value)


def test_each_form_follows_its_contract(two_models: dict[str, Any]) -> None:
    bag = two_models["bag"]
    demo_ci, bikes_ci = bag.dags["ml_ci"], bag.dags["bikes__ml_ci"]
    assert set(demo_ci.params) == {
        "partitions",
        "max_rows",
        "max_epochs",
        "decision_threshold",
        "shuffle_labels",
        "min_roc_auc",
        "roc_auc_tolerance",
        "min_f1",
        "f1_tolerance",
        "max_log_loss",
        "log_loss_tolerance",
        "force_reason",
    }
    assert set(bikes_ci.params) == {
        "partitions",
        "n_trees",
        "max_rmse",
        "rmse_tolerance",
        "min_r2",
        "force_reason",
    }
    schema = {key: bikes_ci.params.get_param(key).schema for key in bikes_ci.params}
    assert schema["max_rmse"] == {"type": "number", "minimum": 0}
    assert schema["min_r2"] == {"type": "number", "maximum": 1}
    assert "ceiling" in bikes_ci.params.get_param("max_rmse").description
    assert bikes_ci.params["partitions"] == "2011-01-01,2011-01-02"
    assert re.fullmatch(schema["partitions"]["pattern"], "2011-02-28,2011-03-01")
    assert not re.fullmatch(schema["partitions"]["pattern"], "2011-02")
    rules = bikes_ci.get_task("model_gate").rules
    assert rules == {
        "rmse": {
            "higher_is_better": False,
            "threshold": "{{ params.max_rmse }}",
            "tolerance": "{{ params.rmse_tolerance }}",
        },
        "r2": {"higher_is_better": True, "threshold": "{{ params.min_r2 }}"},
    }
    assert sorted(t.task_id for t in bikes_ci.get_task("train").upstream_list) == [
        "validate_rides",
        "validate_weather",
    ]
    assert [t.task_id for t in demo_ci.get_task("train").upstream_list] == ["validate_data"]
    bikes_monitor = bag.dags["bikes__ml_monitor"]
    assert bikes_monitor.params["max_mae"] == 30.0 and "min_roc_auc" not in bikes_monitor.params
    assert bikes_monitor.get_task("model_performance").thresholds == {"mae": "{{ params.max_mae }}"}
    assert bag.dags["ml_monitor"].get_task("model_performance").thresholds == {
        "roc_auc": "{{ params.min_roc_auc }}"
    }
    # monitor.drift reaches only its own model's drift sensor, beside the form's backend.
    backend = {"backend": "{{ params.drift_backend }}"}
    assert bag.dags["ml_monitor"].get_task("data_drift").drift_config == backend
    assert bikes_monitor.get_task("data_drift").drift_config == {
        **backend,
        "max_unseen_share": 1.0,
        "p_val": 0.01,
    }


def _render(dag: Any, template: Any, **context: Any) -> Any:
    env = dag.get_template_env()
    return env.from_string(template).render(**context) if isinstance(template, str) else template


def test_ml_ci_renders_the_interval_partition_for_scheduled_runs_and_the_form_for_others() -> None:
    dag = build_dags(DEMO)["ml_ci"]
    train = dag.get_task("train").runtime_params
    start = dt.datetime(2013, 3, 1, tzinfo=dt.UTC)
    form = {"partitions": "2013-05", "max_rows": 3000, "max_epochs": None, "decision_threshold": 0.05}
    scheduled = _render(
        dag, train, data_interval_start=start, dag_run=SimpleNamespace(run_type="backfill"), params=form
    )
    assert scheduled == {
        "partition": "2013-03",
        "data_processing": {"max_rows": 3000},
        "training": {"decision_threshold": 0.05},
    }
    manual = _render(
        dag, train, data_interval_start=None, dag_run=SimpleNamespace(run_type="manual"), params=form
    )
    assert manual["partition"] == "2013-05"
    gate = dag.get_task("validate_data").partition
    assert (
        _render(
            dag, gate, data_interval_start=start, dag_run=SimpleNamespace(run_type="scheduled"), params=form
        )
        == "2013-03"
    )


def test_empty_form_fields_leave_the_projects_values() -> None:
    spec = load(DEMO)
    assert runtime_params(spec.config.ci, "2013-01", {"max_rows": None, "max_epochs": None}) == {
        "partition": "2013-01"
    }


def test_a_prefix_in_the_call_overrides_the_section(tmp_path: Path) -> None:
    dags = build_dags(DEMO, prefix=True)
    assert sorted(dags) == ["flight_delays__ml_cd", "flight_delays__ml_ci", "flight_delays__ml_monitor"]
    monitor = dags["flight_delays__ml_monitor"]
    assert monitor.get_task("trigger_ml_ci").trigger_dag_id == "flight_delays__ml_ci"
    assert "flight_delays__conveyor_retrain_partitions" in monitor.get_task("retrain_request").partitions
    bikes = _write(tmp_path, BIKES)
    assert build_dag(bikes, "ml_cd", prefix=False).dag_id == "ml_cd"
    with pytest.raises(ValueError, match="ml_ci, ml_cd, ml_monitor"):
        build_dag(bikes, "ml_deploy")


def test_contract_path_is_overridden_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CONVEYOR_YML", raising=False)
    assert contract_path(DEMO) == DEMO
    monkeypatch.setenv("CONVEYOR_YML", str(tmp_path / "other.yml"))
    assert contract_path(DEMO) == tmp_path / "other.yml"


def test_the_factorys_copies_of_other_modules_rules_stay_in_step() -> None:
    """Parse time cannot import the gateway or the analysis (numpy); these tests keep the copies honest."""
    from conveyor.core.analysis import AnalysisConfig
    from conveyor.serving.deployment import NAME_PATTERN

    assert set(ANALYSIS_SETTINGS) == set(AnalysisConfig.__dataclass_fields__)
    from conveyor.core.drift import DriftConfig

    assert set(DRIFT_SETTINGS) <= set(DriftConfig.__dataclass_fields__) - {"backend", "method"}
    for key, (low, high, whole) in DRIFT_SETTINGS.items():  # the section's bounds pass the class's
        DriftConfig(**{key: low if key != "p_val" else 0.01})
        if high is not None:
            DriftConfig(**{key: high if key != "p_val" else 0.99})
        assert whole == isinstance(getattr(DriftConfig(), key), int)
    assert DEPLOYMENT_NAME.pattern == NAME_PATTERN.pattern
    assert {m for task in METRICS.values() for m in task} == set(LABELS)


# ---- bad airflow sections ------------------------------------------------------------------------


def _demo() -> dict[str, Any]:
    return yaml.safe_load(DEMO.read_text())


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DROP:
        node.pop(leaf)
    else:
        node[leaf] = value
    return data


_DROP = object()
BAD = [
    ("airflow", _DROP, "airflow.ci is required"),
    ("airflow.ci.schedule", "every month", "airflow.ci.schedule"),
    ("airflow.ci.schedule", "0 0 1 * * 0", "airflow.ci.schedule"),
    ("airflow.ci.schedule", 5, "airflow.ci.schedule"),
    ("airflow.ci.start_date", "March 2013", "airflow.ci.start_date"),
    ("airflow.ci.end_date", dt.date(2012, 1, 1), "airflow.ci.end_date"),
    ("airflow.ci.max_active_runs", 0, "airflow.ci.max_active_runs"),
    ("airflow.ci.max_active_runs", True, "airflow.ci.max_active_runs"),
    ("airflow.ci.partition.format", "%B", "airflow.ci.partition.format"),
    ("airflow.ci.partition.format", "%Y%m", "airflow.ci.partition.format"),
    ("airflow.ci.partition.format", "%Y/%m", "airflow.ci.partition.format"),
    ("airflow.ci.partition.default", ["2013-13"], "airflow.ci.partition.default[0]"),
    ("airflow.ci.partition.default", [], "airflow.ci.partition.default"),
    ("airflow.ci.partition.runtime_param", "training.max_epochs", "overlaps"),
    ("airflow.ci.data_gate", {"flights": ["suite"]}, "airflow.ci.data_gate.flights"),
    ("airflow.ci.params.max_rows.type", "string", "airflow.ci.params.max_rows.type"),
    ("airflow.ci.params.max_rows.maximum", 50, "airflow.ci.params.max_rows.minimum is above"),
    (
        "airflow.ci.params.min_roc_auc",
        {"runtime_param": "x", "type": "number", "description": "d"},
        "min_roc_auc",
    ),
    ("airflow.ci.params.max_rows.runtime_param", "training", "overlaps"),
    ("airflow.ci.params.Bad-Name", {}, "airflow.ci.params.Bad-Name"),
    ("airflow.ci.colour", "blue", "airflow.ci.colour"),
    ("airflow.timezone", "Mars/Olympus", "airflow.timezone"),
    ("airflow.prefix", "yes", "airflow.prefix"),
    ("airflow.connections.kedro", "two words", "airflow.connections.kedro"),
    ("airflow.cd.deployment", "Flights_Prod", "airflow.cd.deployment"),
    ("airflow.cd.strategy", "big_bang", "airflow.cd.strategy"),
    ("airflow.cd.canary_steps", [50, 10, 100], "airflow.cd.canary_steps"),
    ("airflow.cd.canary_steps", [10, 50], "airflow.cd.canary_steps"),
    ("airflow.cd.analysis.interval", 15, "airflow.cd.analysis.interval"),
    ("airflow.cd.analysis.count", -1, "airflow.cd.analysis.count"),
    ("airflow.cd.approval_timeout_hours", 0, "airflow.cd.approval_timeout_hours"),
    ("airflow.monitor.drift_backend", "magic", "airflow.monitor.drift_backend"),
    ("airflow.monitor.window_hours", float("nan"), "airflow.monitor.window_hours"),
    ("airflow.monitor.thresholds.rmse", 3.0, "airflow.monitor.thresholds.rmse"),
    ("airflow.monitor.timeout_minutes", 10**9, "airflow.monitor.timeout_minutes"),
    ("airflow.monitor.drift.method", "mmd", "airflow.monitor.drift.method"),
    ("airflow.monitor.drift.max_unseen_share", 1.5, "airflow.monitor.drift.max_unseen_share"),
    ("airflow.monitor.drift.p_val", 1, "airflow.monitor.drift.p_val"),
    ("airflow.monitor.drift.min_window_rows", 1.5, "airflow.monitor.drift.min_window_rows"),
]


@pytest.mark.parametrize(("path", "value", "named"), BAD, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD])
def test_a_bad_airflow_section_is_a_contract_error_naming_the_field(
    tmp_path: Path, path: str, value: Any, named: str
) -> None:
    conveyor_yml = _write(tmp_path, _set(_demo(), path, value))
    with pytest.raises(ContractError) as err:
        build_dags(conveyor_yml)
    assert named in str(err.value)
    assert str(conveyor_yml) in str(err.value)


def test_a_model_name_that_gives_no_deployment_name_asks_for_one(tmp_path: Path) -> None:
    data = _set(_set(_demo(), "model.name", "Flights_"), "airflow.cd", {})
    with pytest.raises(ContractError, match=r"airflow\.cd\.deployment .*set it"):
        build_dags(_write(tmp_path, data))
    assert (
        load(_write(tmp_path, _set(data, "model.name", "Flight_Delays"))).config.cd.deployment
        == "flight-delays"
    )


# ---- any section: a config or a ContractError, never another exception ---------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.dates()
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.sampled_from(["0 0 1 * *", "@hourly", "%Y-%m", "2013-01", "UTC", "canary", "roc_auc", "flights"])
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_KEYS = {
    "": ["prefix", "timezone", "connections", "ci", "cd", "monitor"],
    "ci": ["schedule", "start_date", "end_date", "max_active_runs", "partition", "data_gate", "params"],
    "ci.partition": ["format", "default", "runtime_param"],
    "cd": [
        "deployment",
        "strategy",
        "canary_steps",
        "analysis",
        "approval_timeout_hours",
        "infra_sample_rows",
    ],
    "monitor": [
        "schedule",
        "start_date",
        "window_hours",
        "drift_backend",
        "thresholds",
        "timeout_minutes",
        "tolerance",
        "drift",
    ],
}
_dates = st.dates(dt.date(1960, 1, 1), dt.date(2300, 1, 1))
# Values a user might write for each key, so that many examples validate and reach deeper checks.
_PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "prefix": st.booleans(),
    "timezone": st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "utc", "Mars/Base"]),
    "schedule": st.sampled_from(
        ["0 0 1 * *", "@hourly", "@quarterly", "*/5 * * * *", "0 0 31 2 *", "61 * * * *"]
    ),
    "start_date": _dates,
    "end_date": st.none() | _dates,
    "max_active_runs": st.integers(-1, 100),
    "format": st.sampled_from(["%Y-%m", "%Y-%m-%d", "%G-W%V", "%Y-%j", "%Y%m", "%Y.%m", "%Y-%mj", "%Y-%q"]),
    "default": st.lists(st.sampled_from(["2013-01", "2013-01-31", "2013-W05", "2013-032"]), max_size=3),
    "runtime_param": st.sampled_from(["partition", "day", "training", "training.max_epochs", "a..b"]),
    "deployment": st.sampled_from(["flights", "bikes-2", "Flights", "-x", "a" * 64]),
    "strategy": st.sampled_from(["canary", "blue_green", "shadow", "big_bang"]),
    "canary_steps": st.lists(st.integers(-5, 120), max_size=4),
    "analysis": st.dictionaries(
        st.sampled_from(["interval_s", "count", "min_requests", "bogus"]), _scalars, max_size=3
    ),
    "approval_timeout_hours": st.floats(-1, 10_000),
    "infra_sample_rows": st.integers(-1, 20_000),
    "window_hours": st.floats(0, 10_000),
    "drift_backend": st.sampled_from(["alibi", "scipy", "torch"]),
    "thresholds": st.dictionaries(st.sampled_from(["roc_auc", "f1", "rmse"]), _scalars, max_size=2),
    "timeout_minutes": st.floats(-1, 20_000),
    "tolerance": st.floats(-1, 2),
    "drift": st.dictionaries(
        st.sampled_from(["max_unseen_share", "p_val", "min_window_rows", "bogus"]), _scalars, max_size=2
    ),
}


@st.composite
def airflow_sections(draw: st.DrawFn) -> Any:
    """The demo's section with a few fields replaced by plausible values or anything at all, or
    something else entirely."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_values)
    section = copy.deepcopy(_demo()["airflow"])
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(sorted(_KEYS)))
        key = draw(st.sampled_from(_KEYS[where])) if draw(st.integers(0, 9)) else draw(st.text(max_size=8))
        plausible = _PLAUSIBLE.get(key)
        value = draw(plausible if plausible is not None and draw(st.integers(0, 3)) else _values)
        node = section
        for part in [p for p in where.split(".") if p]:
            node = node.setdefault(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node[key] = value
    return section


DEMO_CONTRACT = ModelContract.from_file(DEMO)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(section=airflow_sections())
def test_any_airflow_section_is_a_config_or_a_contract_error(section: Any) -> None:
    contract = ModelContract.from_mapping({**DEMO_CONTRACT.to_dict(with_extra=False), "airflow": section})
    try:
        config = AirflowConfig.from_contract(contract, "conveyor.yml")
    except ContractError as exc:
        assert str(exc).startswith("conveyor.yml: ")
        return
    assert config.ci.start_date.tzinfo is not None and config.cd.deployment


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(section=airflow_sections())
def test_a_section_that_validates_builds_its_three_dags(
    tmp_path_factory: pytest.TempPathFactory, section: Any
) -> None:
    data = {**DEMO_CONTRACT.to_dict(with_extra=False), "airflow": section}
    path = tmp_path_factory.mktemp("any") / "conveyor.yml"
    try:
        text = yaml.safe_dump(data)
        # PyYAML writes UTC offsets with seconds (LMT zones: '-05:47:04') that its own loader cannot
        # read (AttributeError, which ModelContract.from_file does not catch): not a conveyor.yml
        # anyone writes by hand, so such examples are left out here.
        yaml.safe_load(text)
    except yaml.YAMLError:
        return
    except AttributeError:
        assume(False)
    path.write_text(text)
    try:
        dags = build_dags(path)
    except ContractError:
        return
    assert len(dags) == 3
