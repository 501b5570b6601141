"""The data gate: a Great Expectations suite run on a DataFrame, reduced to a readable report.

Severity decides, not GX's overall ``success``: GX marks a result unsuccessful when any
expectation fails, warnings included, so the gate looks at which failures are ``critical``.
GX is imported inside ``validate_frame`` because importing it costs seconds.

A suite may leave thresholds to the caller with GX's ``{"$PARAMETER": "name"}`` (e.g. a row count
against earlier partitions, which only the caller knows). A caller that gives no value for a
name does not crash GX: those expectations are listed as skipped in the report, so a weaker
check is never a silent one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

CRITICAL = "critical"
WARNING = "warning"
INFO = "info"
MAX_EXAMPLES = 10
# BASIC holds the counts and up to 20 offending values, all a report shows; SUMMARY adds value
# counts and row indices that cost about a quarter of the run (measured on a month of flights).
RESULT_FORMAT = "BASIC"
# The whole suite runs first with verdicts only: collecting offending values costs GX a filtered
# copy of the frame per expectation (a third of the run on 1M flight rows), and a report needs
# them only for the few expectations that failed, which then run again in RESULT_FORMAT.
VERDICT_FORMAT = "BOOLEAN_ONLY"
# kwargs a report line leaves out: the column is named already, the parser is always pandas.
_UNTOLD = frozenset({"column", "condition_parser"})


@dataclass(frozen=True)
class ExpectationOutcome:
    """One failed expectation: what was expected, how badly it failed, and a few offending values."""

    expectation: str
    severity: str
    column: str | None
    kwargs: dict[str, Any]
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: Any = None
    examples: list[Any] = field(default_factory=list)
    error: str | None = None
    dataset: str | None = None
    notes: str | None = None

    def describe(self) -> str:
        where = f"column {self.column!r}" if self.column else "table"
        where += f" of {self.dataset}" if self.dataset else ""
        expected = ", ".join(f"{k}={_short(v)}" for k, v in self.kwargs.items() if k not in _UNTOLD)
        text = f"[{self.severity.upper()}] {self.expectation} on {where}"
        text += f" ({expected})" if expected else ""
        why = f" -- {self.notes}" if self.notes else ""
        if self.error:
            return f"{text}: could not be evaluated: {self.error}{why}"
        facts = []
        if self.unexpected_count is not None:
            share = f"{self.unexpected_percent:.2f}%" if self.unexpected_percent is not None else "?"
            facts.append(f"{self.unexpected_count} of {self.element_count} rows unexpected ({share})")
        if self.observed_value is not None:
            facts.append(f"observed {_short(self.observed_value)}")
        if self.examples:
            facts.append(f"examples {_short(self.examples)}")
        return f"{text}: " + ("; ".join(facts) if facts else "failed") + why


@dataclass(frozen=True)
class ValidationReport:
    """What the gate decided and why; ``success`` is False only when a critical expectation failed."""

    suite: str
    dataset: str
    row_count: int
    evaluated: int
    passed: int
    failures: list[ExpectationOutcome]
    skipped: list[str] = field(default_factory=list)

    @property
    def critical(self) -> list[ExpectationOutcome]:
        return [f for f in self.failures if f.severity == CRITICAL]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [f for f in self.failures if f.severity != CRITICAL]

    @property
    def success(self) -> bool:
        return not self.critical

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["success"] = self.success
        data["critical_failures"] = len(self.critical)
        data["warning_failures"] = len(self.warnings)
        return _json_safe(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        return cls(
            suite=data["suite"],
            dataset=data["dataset"],
            row_count=data["row_count"],
            evaluated=data["evaluated"],
            passed=data["passed"],
            failures=[ExpectationOutcome(**f) for f in data["failures"]],
            skipped=list(data.get("skipped", [])),
        )

    @classmethod
    def combine(cls, reports: Sequence[ValidationReport]) -> ValidationReport:
        """One verdict over several datasets (e.g. two source tables of one partition), each
        failure naming the dataset it came from; ``row_count`` is the first report's."""
        if not reports:
            raise ValueError("no reports to combine")
        if len(reports) == 1:
            return reports[0]
        failures = [replace(f, dataset=f.dataset or r.dataset) for r in reports for f in r.failures]
        return cls(
            suite=" + ".join(r.suite for r in reports),
            dataset=" + ".join(r.dataset for r in reports),
            row_count=reports[0].row_count,
            evaluated=sum(r.evaluated for r in reports),
            passed=sum(r.passed for r in reports),
            failures=sorted(failures, key=lambda f: f.severity != CRITICAL),
            skipped=[s for r in reports for s in r.skipped],
        )

    def to_text(self) -> str:
        verdict = "PASSED" if self.success else "FAILED"
        lines = [
            f"Data validation {verdict}: suite {self.suite!r} on {self.dataset} ({self.row_count} rows)",
            f"{self.passed} of {self.evaluated} expectations met; "
            f"{len(self.critical)} critical and {len(self.warnings)} warning failures",
        ]
        lines += [f"  {f.describe()}" for f in self.critical + self.warnings]
        lines += [f"  [SKIPPED] {s}" for s in self.skipped]
        return "\n".join(lines)

    def raise_for_critical(self) -> None:
        if not self.success:
            raise DataValidationError(self)


class DataValidationError(ValueError):
    """Critical expectations failed; carries the report so callers can save it before stopping."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(report.to_text())


def load_suite(path: Path) -> dict[str, Any]:
    """A suite as GX writes it (``{"name", "expectations": [{"type", "kwargs", "severity"}]}``)."""
    return json.loads(Path(path).read_text())


def validate_frame(
    frame: Any,
    suite: Mapping[str, Any],
    dataset: str = "dataframe",
    parameters: Mapping[str, Any] | None = None,
) -> ValidationReport:
    """Run ``suite`` on a pandas DataFrame in an ephemeral GX context (no files written), all
    expectations in one GX validation (metrics are shared and batched), on GX's pandas engine with
    the repeated copies taken out (``conveyor.core.validation_engine``).

    ``parameters`` fill the suite's ``$PARAMETER`` references; expectations that need a name
    not given are skipped and listed in the report.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.validator.v1_validator import Validator

    from conveyor.core import validation_record
    from conveyor.core.validation_engine import DATASOURCE_TYPE

    spec = dict(suite)
    if not spec.get("expectations"):
        raise ValueError(f"suite {spec.get('name')!r} has no expectations: it would pass any data")
    # An orchestrator's passing validation of these rows, when the caller made it reusable.
    reused = validation_record.reuse(frame, spec, dataset, parameters)
    if reused is not None:
        return reused
    given = dict(parameters or {})
    runnable, skipped = [], []
    for expectation in spec["expectations"]:
        missing = sorted(_parameter_names(expectation.get("kwargs", {})) - given.keys())
        if missing:
            skipped.append(f"{_label(expectation)}: no value for parameter {', '.join(missing)}")
        else:
            runnable.append(expectation)
    if not runnable:
        raise ValueError(
            f"suite {spec.get('name')!r}: every expectation needs a parameter that was not given"
        )
    spec["expectations"] = runnable
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        getattr(context.data_sources, f"add_{DATASOURCE_TYPE}")("conveyor")
        .add_dataframe_asset(dataset)
        .add_batch_definition_whole_dataframe("whole")
    )
    # A consolidated copy: GX still filters the whole frame per row condition and per failed
    # expectation's examples, and on a frame built by concat (unconsolidated blocks) pandas
    # re-consolidates every time (measured on 1M flight rows with the stock engine: 16.7 s as
    # loaded vs 7.3 s after this copy); the copy also keeps GX off the caller's frame.
    # One validator for both passes, so the batch is built (and fingerprinted by GX) once.
    validator = Validator(
        batch_definition=batch_definition,
        batch_parameters={"dataframe": frame.copy()},
        result_format=VERDICT_FORMAT,
    )
    result = validator.validate_expectation_suite(
        gx.ExpectationSuite(**spec), expectation_parameters=given or None
    )
    failed = [r.expectation_config.to_domain_obj() for r in result.results if not r.success]
    if failed:
        # Their configurations hold the parameter values already, so none are passed again.
        validator.result_format = RESULT_FORMAT
        detailed = validator.validate_expectation_suite(
            gx.ExpectationSuite(name=str(spec.get("name", "suite")), expectations=failed)
        ).results
    else:
        detailed = []
    failures = [_outcome(r) for r in detailed]
    # Suite order, critical first: the report reads top-down from what stopped the run.
    failures.sort(key=lambda f: f.severity != CRITICAL)
    return ValidationReport(
        suite=str(spec.get("name", "suite")),
        dataset=dataset,
        row_count=len(frame),
        evaluated=int(result.statistics["evaluated_expectations"]),
        passed=int(result.statistics["successful_expectations"]),
        failures=failures,
        skipped=skipped,
    )


def row_count_bounds(
    history: Sequence[int], periods: int, *, low: float, high: float, minimum: int
) -> tuple[int, int | None]:
    """Plausible row counts for ``periods`` partitions, given the row counts of earlier ones.

    Within ``[low, high]`` times the median earlier partition (times ``periods``), and never
    below ``minimum`` per period. Without history there is no upper bound: the first partition
    cannot be compared with anything.
    """
    if periods < 1:
        raise ValueError(f"periods must be at least 1, got {periods}")
    if not 0 < low <= 1 <= high:
        raise ValueError(f"row count factors must satisfy 0 < low <= 1 <= high, got low={low}, high={high}")
    floor = minimum * periods
    if not history:
        return floor, None
    median = float(np.median(history)) * periods
    return max(floor, math.floor(low * median)), math.ceil(high * median)


def _parameter_names(value: Any) -> set[str]:
    """The ``$PARAMETER`` names anywhere in an expectation's kwargs."""
    if isinstance(value, Mapping):
        own = {str(value["$PARAMETER"])} if "$PARAMETER" in value else set()
        return own.union(*(_parameter_names(v) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(_parameter_names(v) for v in value))
    return set()


def _label(expectation: Mapping[str, Any]) -> str:
    column = expectation.get("kwargs", {}).get("column")
    return f"{expectation.get('type')} on " + (f"column {column!r}" if column else "table")


def _outcome(result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
    condition = kwargs.get("row_condition")
    if isinstance(condition, Mapping) and "pass_through_filter" in condition:
        kwargs["row_condition"] = condition["pass_through_filter"]  # GX wraps the suite's string
    details = dict(result.result or {})
    severity = getattr(config.severity, "value", config.severity) or CRITICAL
    return ExpectationOutcome(
        expectation=config.type,
        severity=str(severity),
        column=kwargs.get("column"),
        kwargs=_json_safe(kwargs),
        element_count=details.get("element_count"),
        unexpected_count=details.get("unexpected_count"),
        unexpected_percent=details.get("unexpected_percent"),
        observed_value=_json_safe(details.get("observed_value")),
        # Nulls as examples say nothing that the expectation's name does not already say.
        examples=_json_safe(
            [v for v in details.get("partial_unexpected_list") or [] if not _is_null(v)][:MAX_EXAMPLES]
        ),
        error=_error_message(result.exception_info),
        notes=str(config.notes) if config.notes else None,
    )


def _error_message(info: Any) -> str | None:
    """GX reports errors either flat or keyed by metric id; a missing column shows up as either."""
    flat = isinstance(info, Mapping) and "raised_exception" in info
    infos = [info] if flat else list((info or {}).values())
    raised = [i for i in infos if isinstance(i, Mapping) and i.get("raised_exception")]
    messages = [i["exception_message"] for i in raised if i.get("exception_message")]
    if messages:
        return "; ".join(dict.fromkeys(str(m).splitlines()[0] for m in messages))
    return None


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(_json_safe(value)) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_safe(value: Any) -> Any:
    """numpy scalars, NaN and odd types into plain JSON (GX results hold ``numpy.bool_`` and NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
