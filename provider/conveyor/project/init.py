"""``conveyor init``: the files that add Conveyor to an existing Kedro project.

It writes the contract (``conf/base/conveyor.yml``, commented, with starting thresholds measured
on the data rather than copied from the demo), a GX suite drafted from a sample of the input, the
suite's catalog entry and a DAG file; all or nothing, and never over a file that exists. What it
cannot know (which node outputs are the model, the metrics, the eval set) it leaves as ``TODO_``
names that ``kedro run`` and ``conveyor doctor`` refuse by name.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from conveyor.core.contract import CONTRACT_FILE, TASKS, ContractError, ModelContract
from conveyor.project.kedro_project import KedroProject, ProjectError, open_project
from conveyor.project.suite_draft import draft_suite

# Rows of the input the draft and the starting thresholds are measured on (a seeded sample).
DEFAULT_SAMPLE_ROWS = 10_000
CATALOG_FILE = "catalog_conveyor.yml"


@dataclass(frozen=True)
class InitRequest:
    dataset: str
    label: str
    task: str
    score: str
    decision: str | None = None
    name: str | None = None
    sample_rows: int = DEFAULT_SAMPLE_ROWS


def targets(project: Path, name: str, dataset: str) -> dict[str, Path]:
    base = project / "conf" / "base"
    return {
        "contract": base / CONTRACT_FILE,
        "suite": base / "gx" / f"{dataset}_suite.json",
        "catalog": base / CATALOG_FILE,
        "dag": project / "dags" / f"{name}.py",
    }


def init_project(path: Path, request: InitRequest, env: str | None = None) -> dict[str, Path]:
    """Write the four files; returns them by role. Raises ``ProjectError`` (nothing written)
    when the project, the dataset or the request does not fit."""
    if request.task not in TASKS:
        raise ProjectError(f"--task {request.task!r} is not one of {', '.join(TASKS)}")
    with open_project(path, env) as project:
        name = request.name or project.package
        files = targets(project.path, name, request.dataset)
        taken = [str(p.relative_to(project.path)) for p in files.values() if p.exists()]
        if taken:
            raise ProjectError(f"refusing to overwrite {', '.join(taken)}: move them away to start again")
        suite_entry = f"{request.dataset}_suite"
        if suite_entry in project.catalog:
            raise ProjectError(f"the catalog already has an entry {suite_entry!r}")
        frame = _sample(project, request)
        suite = draft_suite(frame, request.dataset, request.label, source=request.dataset)
        contract_text = contract_yaml(name, request, frame)
        _check_contract(contract_text, files["contract"])
        texts = {
            "contract": contract_text,
            "suite": json.dumps(suite, indent=2) + "\n",
            "catalog": catalog_yaml(suite_entry, files["suite"].relative_to(project.path)),
            "dag": dag_file(name, files["contract"]),
        }
    for target in files.values():
        target.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for role, target in files.items():
            with target.open("x") as handle:  # "x": a file that appeared meanwhile is not overwritten
                handle.write(texts[role])
            written.append(target)
    except FileExistsError as exc:
        for target in written:
            target.unlink()
        raise ProjectError(f"refusing to overwrite {exc.filename}: it appeared while init ran") from None
    return files


def _sample(project: KedroProject, request: InitRequest) -> Any:
    import pandas as pd

    data = project.load(request.dataset)
    if not isinstance(data, pd.DataFrame):
        raise ProjectError(
            f"{request.dataset!r} loads as {type(data).__name__}, not a pandas DataFrame: "
            "init drafts a suite for a table"
        )
    if request.label not in data.columns:
        raise ProjectError(
            f"--label {request.label!r} is not a column of {request.dataset!r} "
            f"({', '.join(map(str, data.columns[:20]))})"
        )
    odd = [c for c in data.columns if not isinstance(c, str)]
    if odd:
        raise ProjectError(f"{request.dataset!r} has column names that are not strings: {odd[:5]}")
    if len(data) > request.sample_rows:
        data = data.sample(n=request.sample_rows, random_state=0).sort_index()
    return data


def _check_contract(text: str, path: Path) -> None:
    """What init writes must load: a contract error here is init's bug or the user's flags."""
    import yaml

    from conveyor.dags.config import AirflowConfig

    try:
        contract = ModelContract.from_mapping(yaml.safe_load(text), source=str(path))
        AirflowConfig.from_contract(contract, str(path))
    except ContractError as exc:
        raise ProjectError(f"the contract init would write does not load: {exc}") from None


def _round(value: float) -> float:
    """Three significant digits: a starting value to review, not a measurement to keep."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    return float(f"{value:.3g}")


@dataclass(frozen=True)
class _TaskLines:
    """The task-specific lines of the contract (``model.classes``, ``model.outputs``, ``gate``,
    ``canary``), with starting values measured on the label: what a model must beat."""

    classes: list[str]
    outputs: list[str]
    gate: list[str]
    canary: list[str]


def _task_lines(request: InitRequest, label: Any) -> _TaskLines:
    if request.task == "regression":
        if not _numeric(label):
            raise ProjectError(f"--label {request.label!r} is not numeric: a regression needs a number")
        spread = _round(float(label.std()))
        outputs = [f"    score: {request.score}    # the predicted value"]
        gate = [
            "    rmse:",
            f"      threshold: {spread}    # REVIEW: the label's std, i.e. predicting the mean",
            f"      tolerance: {_round(spread * 0.05)}    # REVIEW: 5 % of it worse than the champion",
        ]
        canary = [
            "  online_metric: mae           # mean absolute error on labelled live traffic",
            f"  max_degradation: {_round(spread * 0.1)}    # REVIEW: 10 % of the label's standard deviation",
        ]
        return _TaskLines([], outputs, gate, canary)
    classes = sorted({str(v) for v in label.dropna().unique()})
    if request.task == "binary_classification":
        if len(classes) != 2:
            raise ProjectError(
                f"--label {request.label!r} has {len(classes)} distinct values, a binary label has 2"
            )
        outputs = [f"    score: {request.score}    # P(positive class)"]
        if request.decision:
            outputs.append(f"    decision: {request.decision}    # the 0/1 decision served to clients")
        gate = [
            "    roc_auc:",
            "      threshold: 0.6               # REVIEW: 0.5 is a coin",
            "      tolerance: 0.01              # REVIEW: how much worse than the champion is allowed",
        ]
    else:
        if not 3 <= len(classes) <= 50:
            raise ProjectError(
                f"--label {request.label!r} has {len(classes)} distinct values; multi-class needs 3 to 50"
            )
        majority = _round(float(label.value_counts(normalize=True).iloc[0]))
        outputs = [
            f"    score: {request.score}    # the top class's probability",
            f"    decision: {request.decision or 'predicted_' + request.label}    # the predicted class",
            f"    probabilities: {json.dumps([f'probability_{c}' for c in classes])}  # REVIEW",
        ]
        gate = [
            "    accuracy:",
            f"      threshold: {majority}    # REVIEW: the majority class's share, i.e. always answering it",
            "    macro_f1:",
            "      tolerance: 0.01              # REVIEW: how much worse than the champion is allowed",
        ]
    canary = [
        "  online_metric: accuracy      # on labelled live traffic, canary vs stable",
        "  max_degradation: 0.05        # REVIEW",
    ]
    listed = [f"  classes: {json.dumps(classes)}"] if request.task == "multiclass_classification" else []
    return _TaskLines(listed, outputs, gate, canary)


def _numeric(series: Any) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def contract_yaml(name: str, request: InitRequest, frame: Any) -> str:
    task = _task_lines(request, frame[request.label])
    today = date.today().isoformat()
    suite = f"{request.dataset}_suite"
    lines = [
        f"# Conveyor model contract, written by `conveyor init` on {today} from {len(frame)} rows of",
        f"# `{request.dataset}`. Conveyor stores the model, gate and canary sections with every",
        "# registered version; the gate, the gateway, canary analysis and monitoring read them from the",
        "# version they handle. Review each REVIEW and fill each TODO_; `conveyor doctor` checks the file",
        "# against the project (docs/init.md).",
        "model:",
        f"  name: {name}    # registered model in MLflow; part of DAG ids, asset URIs, deployments",
        f"  task: {request.task}    # binary_classification | multiclass_classification | regression",
        f"  label: {request.label}    # the truth: a column of the evaluation set and of feedback",
        *task.classes,
        "  outputs:                     # the columns the logged model's predict() returns",
        *task.outputs,
        "gate:",
        "  metrics:  # threshold: a floor (a ceiling if lower is better); tolerance: vs the champion",
        *task.gate,
        "canary:",
        *task.canary,
        "",
        "# Conveyor's Kedro plugin: which catalog entries (node outputs count) a `kedro run` produces.",
        "# A run that produced the model, metrics, eval set and reference sample registers a version of",
        "# model.name with this contract, alias `challenger`.",
        "kedro:",
        "  model: TODO_model                   # the trained model",
        "  log_model: TODO_module:log_model    # fn(model, eval_set) -> mlflow.<flavour>.log_model()",
        "  metrics: TODO_metrics               # {metric: number} on held-out rows",
        "  eval_set: TODO_eval_set             # held-out rows with the label: what the gate scores",
        "  reference_sample: TODO_reference    # training rows drift detection compares traffic with",
        "  data_gate:                          # input dataset -> the catalog entry of its GX suite",
        f"    {request.dataset}: {suite}",
        "",
        "# How Airflow runs this model's loop (dags/ holds the DAG file; docs/airflow.md, \"DAGs for",
        "# your model\"). Each run's partition is its data interval's start, given to Kedro as a",
        "# parameter; a project that always trains on all its data ignores it.",
        "airflow:",
        "  prefix: false                # true: DAG ids <name>__ml_ci etc. (a 2nd model in one Airflow)",
        "  ci:",
        '    schedule: "@weekly"        # REVIEW',
        f"    start_date: {today}",
        "    partition:",
        '      format: "%Y-%m-%d"',
        f'      default: ["{today}"]',
        "      runtime_param: partition",
        "    data_gate:",
        f"      {request.dataset}: {suite}",
        "  cd:",
        "    strategy: canary           # canary | blue_green | shadow",
        "  monitor:",
        '    schedule: "@hourly"',
        "    drift_backend: scipy       # scipy | alibi (BSL licence)",
        "",
    ]
    return "\n".join(_aligned(line) for line in lines)


def _aligned(line: str, column: int = 34) -> str:
    """The line with its trailing comment at ``column``, so the file reads as a table."""
    code, sep, comment = line.partition("  # ")
    if not sep or not code.strip():
        return line
    return f"{code.rstrip() + ' ':<{column}}# {comment}"


def catalog_yaml(entry: str, suite_path: Path) -> str:
    return (
        "# Written by `conveyor init`: the data gate's GX suite, read by Conveyor's Kedro plugin and\n"
        "# the ml_ci DAG (conveyor.yml, data_gate).\n"
        f"{entry}:\n"
        "  type: json.JSONDataset\n"
        f"  filepath: {suite_path.as_posix()}\n"
    )


def dag_file(name: str, contract: Path) -> str:
    return (
        f'"""Airflow DAGs of the {name} model (ml_ci, ml_cd, ml_monitor), built from its conveyor.yml.\n\n'
        "Written by `conveyor init`. Put this file in Airflow's DAGs folder; CONVEYOR_YML is where\n"
        "Airflow reads this project's contract (change it where the project is deployed elsewhere).\n"
        '"""\n\n'
        "from conveyor.dags import build_dags\n\n"
        f"CONVEYOR_YML = {str(contract)!r}\n\n"
        "build_dags(CONVEYOR_YML)\n"
    )
