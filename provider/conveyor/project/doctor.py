"""``conveyor doctor``: a project checked the way its runs will use it, each problem named.

Contract <-> catalog <-> suite <-> MLflow: the checks a ``kedro run`` or an ``ml_ci`` run would
otherwise fail on minutes in (or, for a suite that no longer matches the data, pass silently).
Each check reports on its own, so one run of doctor lists every problem, not the first.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.contract import ContractError, ModelContract
from conveyor.project.kedro_project import KedroProject, ProjectError, open_project

if TYPE_CHECKING:
    from conveyor.dags.config import AirflowConfig

# Rows of each gated dataset the suite is run on.
SAMPLE_ROWS = 10_000
_SUITE_COLUMN_KEYS = ("column", "column_A", "column_B")
_SUITE_COLUMN_LIST_KEYS = ("column_list", "column_set")


@dataclass(frozen=True)
class Finding:
    ok: bool
    subject: str
    message: str

    def line(self) -> str:
        return f"  {'ok     ' if self.ok else 'PROBLEM'}  {self.subject}: {self.message}"


def check_project(path: Path, env: str | None = None) -> list[Finding]:
    try:
        with open_project(path, env) as project:
            return list(_checks(project))
    except ProjectError as exc:
        return [Finding(False, "project", str(exc))]


def _checks(project: KedroProject) -> Iterator[Finding]:
    from conveyor.kedro.config import kedro_section
    from conveyor.kedro.hooks import SOURCE, read_contract

    try:
        contract = read_contract(project.context.config_loader)
    except ContractError as exc:
        yield Finding(False, "conveyor.yml", str(exc))
        return
    if contract is None:
        yield Finding(False, "conveyor.yml", "the project has none: `conveyor init` writes one")
        return
    outputs = ", ".join(contract.outputs.required)
    yield Finding(
        True,
        "conveyor.yml",
        f"model {contract.name} ({contract.task}), label {contract.label}, outputs {outputs}, "
        f"gate on {', '.join(r.metric for r in contract.gate)}, canary on {contract.canary.online_metric}",
    )
    try:
        section = kedro_section(contract, SOURCE)
    except ContractError as exc:
        yield Finding(False, "kedro section", str(exc))
        section = None
    else:
        if section is None:
            yield Finding(
                False, "kedro section", "no kedro: section: `kedro run` records and registers nothing"
            )
    # Each (dataset, suite) pair is checked once, naming every section that declares it.
    gates: dict[tuple[str, str], list[str]] = {}
    if section is not None:
        yield from _kedro_checks(project, section)
        yield _mlflow_check(section.store_uri(project.path))
        for pair in section.data_gate:
            gates.setdefault(pair, []).append("kedro.data_gate")
    airflow = yield from _airflow_checks(contract)
    partition = None
    if airflow is not None:
        partition = airflow.ci.partition.default[0]
        for pair in airflow.ci.data_gate:
            gates.setdefault(pair, []).append("airflow.ci.data_gate")
    yield from _gate_checks(project, gates, partition)


def _kedro_checks(project: KedroProject, section: Any) -> Iterator[Finding]:
    from conveyor.kedro.hooks import unknown_names

    unknown = unknown_names(section, project.catalog)
    if unknown:
        outputs = sorted(n for n in project.pipeline_datasets() if not n.startswith("params:"))
        yield Finding(
            False,
            "kedro names",
            f"{', '.join(unknown)}: not a catalog entry nor a dataset of any pipeline "
            f"(the pipelines' datasets: {', '.join(outputs[:30]) or 'none'})",
        )
    else:
        yield Finding(
            True, "kedro names", f"{len(section.datasets())} names found in the catalog and pipelines"
        )
    try:
        section.model_logger()
    except ContractError as exc:
        yield Finding(False, "kedro.log_model", str(exc).removeprefix("kedro.log_model: "))
    else:
        yield Finding(True, "kedro.log_model", f"{section.log_model} imports")


def _gate_checks(
    project: KedroProject, gates: dict[tuple[str, str], list[str]], partition: str | None
) -> Iterator[Finding]:
    """Each suite on its data; a partitioned dataset on the partition ml_ci's manual runs train on."""
    from conveyor.core.kedro_runner import is_partitioned, select_partitions
    from conveyor.core.validation import validate_frame

    for (dataset, suite_name), places in gates.items():
        subject = f"data gate {dataset} ({', '.join(places)})"
        try:
            suite = project.load(suite_name)
            frame = project.load(dataset)
            if is_partitioned(frame):
                if partition is None:
                    raise ProjectError(
                        f"{dataset!r} is partitioned, and no airflow: section names a partition"
                    )
                frame = select_partitions(dataset, frame, partition)
        except (ProjectError, ValueError) as exc:
            yield Finding(False, subject, str(exc))
            continue
        if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
            yield Finding(
                False, subject, f"{suite_name!r} is not a GX suite (a JSON object with expectations)"
            )
            continue
        if not hasattr(frame, "columns"):
            yield Finding(False, subject, f"{dataset!r} loads as {type(frame).__name__}, not a table")
            continue
        missing = sorted(suite_columns(suite) - {str(c) for c in frame.columns})
        if missing:
            yield Finding(
                False,
                subject,
                f"suite {suite_name} names columns {dataset} does not have: {', '.join(missing)}",
            )
        sample = frame.sample(n=SAMPLE_ROWS, random_state=0) if len(frame) > SAMPLE_ROWS else frame
        try:
            report = validate_frame(sample, suite, dataset=dataset)
        except Exception as exc:  # a suite GX refuses (unknown expectation, bad kwargs)
            yield Finding(False, subject, f"suite {suite_name} does not run: {type(exc).__name__}: {exc}")
            continue
        draft = (
            " (still marked a draft: review it)"
            if suite.get("meta", {}).get("conveyor", {}).get("draft")
            else ""
        )
        if report.critical:
            failed = "; ".join(f.describe() for f in report.critical[:5])
            yield Finding(
                False, subject, f"{len(report.critical)} critical failures on {len(sample)} rows: {failed}"
            )
        else:
            yield Finding(
                True,
                subject,
                f"suite {suite_name}: {report.passed} of {report.evaluated} expectations met on "
                f"{len(sample)} rows, {len(report.warnings)} warnings, {len(report.skipped)} need "
                f"run parameters{draft}",
            )


def suite_columns(suite: dict[str, Any]) -> set[str]:
    """The columns a suite's expectations name."""
    names: set[str] = set()
    for expectation in suite.get("expectations", []):
        kwargs = expectation.get("kwargs", {}) if isinstance(expectation, dict) else {}
        names.update(str(kwargs[k]) for k in _SUITE_COLUMN_KEYS if isinstance(kwargs.get(k), str))
        for key in _SUITE_COLUMN_LIST_KEYS:
            if isinstance(kwargs.get(key), list):
                names.update(str(c) for c in kwargs[key])
    return names


def _mlflow_check(configured: str) -> Finding:
    """The store the plugin will use: $MLFLOW_TRACKING_URI when set (it wins), else the section's."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured
    if uri.startswith(("http://", "https://")):
        import httpx

        try:
            answer = httpx.get(f"{uri.rstrip('/')}/health", timeout=5.0)
        except httpx.HTTPError as exc:
            return Finding(False, "MLflow", f"{uri} does not answer: {type(exc).__name__}: {exc}")
        if answer.status_code != 200:
            return Finding(False, "MLflow", f"{uri}/health answered {answer.status_code}")
        return Finding(True, "MLflow", f"{uri} answers")
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        if not database.exists():
            folder = database.parent
            if os.access(folder, os.W_OK):
                return Finding(True, "MLflow", f"{uri}: created by the first run")
            return Finding(False, "MLflow", f"{uri}: {folder} is not writable")
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                db.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError as exc:
            return Finding(False, "MLflow", f"{uri}: not an SQLite database: {exc}")
        return Finding(True, "MLflow", f"{uri}: an SQLite store")
    return Finding(True, "MLflow", f"{uri}: not checked (only http(s) and sqlite stores are)")


def _airflow_checks(contract: ModelContract) -> Generator[Finding, None, AirflowConfig | None]:
    """The section's findings; returns the section when it parses."""
    from conveyor.dags.config import SECTION, AirflowConfig
    from conveyor.kedro.hooks import SOURCE

    if SECTION not in contract.extra:
        yield Finding(True, "airflow section", "no airflow: section (only the DAG factory needs one)")
        return None
    try:
        config = AirflowConfig.from_contract(contract, SOURCE)
    except ImportError as exc:  # schedules are parsed by Airflow's own timetables
        yield Finding(True, "airflow section", f"not checked: Airflow is not installed here ({exc.name})")
        return None
    except ContractError as exc:
        yield Finding(False, "airflow section", str(exc))
        return None
    yield Finding(
        True,
        "airflow section",
        f"ml_ci on {config.ci.schedule}, ml_cd to deployment {config.cd.deployment} ({config.cd.strategy})",
    )
    return config
