"""The command line of the demo: start the stack, tell the story, print the summary and the URLs."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from conveyor.demo.report import Progress, summary, table
from conveyor.demo.stack import DemoStack, start_stack, stop_previous
from conveyor.local.airflow import EXECUTORS


def parser() -> argparse.ArgumentParser:
    from conveyor.demo import __doc__ as doc
    from conveyor.demo.loop import Settings

    defaults = Settings()
    p = argparse.ArgumentParser(prog="conveyor demo", description=(doc or "").splitlines()[0])
    p.add_argument("--var", type=Path, default=Path("var"), help="state folder (default: var)")
    p.add_argument("--down", action="store_true", help="stop the services a demo left running, then exit")
    p.add_argument("--max-rows", type=int, default=defaults.max_rows, help="labelled rows per ml_ci training")
    p.add_argument("--max-epochs", type=int, default=defaults.max_epochs, help="training epochs cap")
    p.add_argument("--rate", type=float, default=defaults.rate, help="replayed flights per second")
    p.add_argument(
        "--traffic-rows", type=int, default=defaults.traffic_rows, help="April flights in the replay loop"
    )
    p.add_argument("--summary-json", type=Path, help="also write the outcomes and URLs here")
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="who runs Airflow's tasks: local (LocalExecutor, default) or celery (Redis + 2 Celery workers)",
    )
    p.add_argument(
        "--gateway-replicas",
        type=_replicas,
        default=1,
        help="1 (default): one conveyor serve on SQLite; N > 1: nginx in front of N replicas on a "
        "PostgreSQL store and one conveyor controller",
    )
    return p


def _replicas(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--gateway-replicas is a count of replicas (>= 1), got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    from conveyor.demo.loop import DemoLoop, Settings

    args = parser().parse_args(argv)
    if args.down:
        stopped = stop_previous(args.var)
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing recorded as running")
        return 0
    settings = Settings(
        max_rows=args.max_rows, max_epochs=args.max_epochs, rate=args.rate, traffic_rows=args.traffic_rows
    )
    progress = Progress()
    with progress.step("stopping services a previous run left"):
        stopped = stop_previous(args.var)
        progress.note(", ".join(stopped) if stopped else "none")
    try:
        with progress.step("starting MLflow, gateway, Prometheus, PostgreSQL + Airflow under var/demo"):
            stack = start_stack(
                args.var,
                progress=progress.note,
                retrain_partitions=settings.traffic_month,
                executor=args.executor,
                gateway_replicas=args.gateway_replicas,
            )
    except (RuntimeError, TimeoutError) as exc:
        progress.line(f"the services did not start: {exc}")
        progress.line("whatever did start is recorded in var/services.json: `make down` stops it")
        return 1
    outcomes = DemoLoop(stack, settings, progress).run()
    print()
    print(f"Conveyor demo finished in {progress.elapsed()} (mm:ss)")
    print(summary(outcomes))
    print()
    print(urls(stack))
    print()
    print("The services keep running for you to explore. Stop them with: make down")
    if args.summary_json:
        args.summary_json.write_text(
            json.dumps(
                {
                    "elapsed": progress.elapsed(),
                    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "outcomes": [vars(o) for o in outcomes],
                    "urls": stack.urls,
                },
                indent=2,
            )
        )
    return 0 if outcomes and all(o.expected for o in outcomes) else 1


def urls(stack: DemoStack) -> str:
    return table(("service", "where"), list(stack.urls.items()))
