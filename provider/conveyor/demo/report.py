"""What the person running the demo sees: one line per step with the elapsed time, then a table.

A demo that runs for many minutes must show that it is alive and where it is; a long wait
prints a line when its state changes, never a spinner that hides the reason it waits.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Outcome:
    """One row of the summary: what happened in a step and whether it is what the demo expected."""

    step: str
    result: str
    expected: bool
    version: str = ""
    detail: str = ""
    seconds: float = 0.0


class StepFailed(RuntimeError):
    """A step could not finish (a service or DAG run failed); the message says which and why."""


@dataclass
class Progress:
    out: TextIO = field(default_factory=lambda: sys.stdout)
    started: float = field(default_factory=time.monotonic)
    outcomes: list[Outcome] = field(default_factory=list)

    def elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"

    def line(self, text: str) -> None:
        print(f"[{self.elapsed()}] {text}", file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A detail inside the current step (state changes while waiting)."""
        self.line(f"    {text}")

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        began = time.monotonic()
        self.line(f"> {title}")
        try:
            yield
        except BaseException as exc:
            self.line(f"x {title} failed after {time.monotonic() - began:.0f}s: {exc}")
            raise
        self.line(f"  {title} done in {time.monotonic() - began:.0f}s")

    def record(self, outcome: Outcome) -> Outcome:
        self.outcomes.append(outcome)
        mark = "as expected" if outcome.expected else "NOT AS EXPECTED"
        self.note(f"=> {outcome.result} {outcome.version} ({mark}): {outcome.detail}")
        return outcome


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(v)) for v in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def summary(outcomes: Sequence[Outcome]) -> str:
    rows = [
        (o.step, o.result, o.version, "yes" if o.expected else "NO", f"{o.seconds:.0f}s", o.detail)
        for o in outcomes
    ]
    return table(("step", "result", "version", "expected", "took", "detail"), rows)
