"""Validate once: a passing validation, recorded by its suite and its rows, reused on the same rows.

ml_ci checks a partition in a task of its own (a critical failure stops the run before anything
trains, with the report on an MLflow run); the train task's ``kedro run`` then meets the same
suite on the same rows again, in a node of the pipeline or in the plugin's data gate, both of
which call ``validate_frame``. The validation task tags its MLflow run with the suite's hash, the
rows' content hash (the lineage hash, ``conveyor.core.lineage.content_hash``) and the parameters
it was given: MLflow is the one service every worker reaches (Celery workers on other hosts share
no disk). A run handed those MLflow runs (``reusing``) takes their outcomes for every expectation
they evaluated, and evaluates only the rest: the expectations that need a parameter the
validation task did not have (a row count against earlier partitions, which only the pipeline
knows). Other rows (another hash), another suite, or other parameter values are validated in
full, and so is everything in a run handed nothing: a plain ``kedro run`` always validates.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from conveyor.core.lineage import content_hash, params_hash
from conveyor.core.validation import CRITICAL, ValidationReport, _parameter_names, validate_frame

logger = logging.getLogger(__name__)

STATUS_TAG = "conveyor.validation.status"
SUITE_HASH_TAG = "conveyor.validation.suite_hash"
DATA_HASH_TAG = "conveyor.data_hash"
PARAMETERS_TAG = "conveyor.validation.parameters"

# The records the running process may reuse; one Kedro session at a time per process, as
# Kedro's own session store assumes, and nodes of a thread runner see them too.
_active: tuple[Record, ...] = ()


@dataclass(frozen=True)
class Record:
    """A passing validation: of which suite, on which rows, with which parameters, and its report."""

    source: str
    suite_hash: str
    data_hash: str
    parameters: dict[str, Any]
    report: ValidationReport


def record_tags(
    frame: Any, suite: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The tags that make a validation's MLflow run a record another gate can reuse."""
    return {
        SUITE_HASH_TAG: params_hash(dict(suite)),
        DATA_HASH_TAG: content_hash(frame),
        PARAMETERS_TAG: _canonical(dict(parameters or {})),
    }


def load_record(client: Any, run_id: str, report_path: str) -> Record | None:
    """The record of validation run ``run_id`` (its report at artifact ``report_path``), or
    ``None`` when the run failed or carries no record tags (one logged before they existed)."""
    tags = client.get_run(run_id).data.tags
    if tags.get(STATUS_TAG) != "passed" or not {SUITE_HASH_TAG, DATA_HASH_TAG, PARAMETERS_TAG} <= set(tags):
        logger.info("validation run %s is not a passing record: nothing of it is reused", run_id)
        return None
    import mlflow

    text = mlflow.artifacts.load_text(f"runs:/{run_id}/{report_path}")
    return Record(
        source=run_id,
        suite_hash=tags[SUITE_HASH_TAG],
        data_hash=tags[DATA_HASH_TAG],
        parameters=json.loads(tags[PARAMETERS_TAG]),
        report=ValidationReport.from_dict(json.loads(text)),
    )


@contextmanager
def reusing(records: Sequence[Record]) -> Iterator[None]:
    """Let every ``validate_frame`` in this block reuse ``records`` where they cover its rows."""
    global _active
    previous, _active = _active, tuple(records)
    try:
        yield
    finally:
        _active = previous


def reuse(
    frame: Any, suite: Mapping[str, Any], dataset: str, parameters: Mapping[str, Any] | None
) -> ValidationReport | None:
    """``validate_frame``'s report for these rows from an active record, evaluating only what
    the record did not; ``None`` when no record is of this suite, these rows and these values."""
    if not _active:
        return None
    given = dict(parameters or {})
    suite_hash = params_hash(dict(suite))
    records = [r for r in _active if r.suite_hash == suite_hash and _agrees(r.parameters, given)]
    if not records:
        return None
    data_hash = content_hash(frame)
    record = next((r for r in records if r.data_hash == data_hash), None)
    if record is None:
        logger.info(
            "%s: rows differ from those validated by MLflow run %s (data hash %s, not %s): validating",
            dataset,
            records[0].source,
            data_hash[:12],
            records[0].data_hash[:12],
        )
        return None
    report = _complete(record, frame, suite, dataset, given)
    logger.info(
        "%s: reused validation report of MLflow run %s for %d of %d expectations evaluated "
        "(suite %r, data hash %s)",
        dataset,
        record.source,
        record.report.evaluated,
        report.evaluated,
        report.suite,
        data_hash[:12],
    )
    return report


def _complete(
    record: Record, frame: Any, suite: Mapping[str, Any], dataset: str, given: Mapping[str, Any]
) -> ValidationReport:
    """The record's report plus the expectations it had to skip that ``given`` can now run."""
    own = set(record.parameters)
    rest = [e for e in suite["expectations"] if _parameter_names(e.get("kwargs", {})) - own]
    runnable = [e for e in rest if _parameter_names(e.get("kwargs", {})) <= set(given)]
    if not runnable:
        return replace(record.report, dataset=dataset)
    fresh = validate_frame(frame, {**suite, "expectations": runnable}, dataset=dataset, parameters=given)
    # The record skipped exactly ``rest``, in suite order: what is still skipped keeps its line.
    still_skipped = [line for e, line in zip(rest, record.report.skipped, strict=False) if e not in runnable]
    failures = [*record.report.failures, *fresh.failures]
    return replace(
        record.report,
        dataset=dataset,
        evaluated=record.report.evaluated + fresh.evaluated,
        passed=record.report.passed + fresh.passed,
        failures=sorted(failures, key=lambda f: f.severity != CRITICAL),
        skipped=still_skipped + fresh.skipped,
    )


def _agrees(recorded: Mapping[str, Any], given: Mapping[str, Any]) -> bool:
    """Whether the record's parameters have the values given now (it may have had fewer)."""
    return all(
        name in given and _canonical(given[name]) == _canonical(value) for name, value in recorded.items()
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
