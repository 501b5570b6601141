"""``%conveyor`` / ``%%conveyor``: trigger, watch and inspect Conveyor runs from a notebook.

Every subcommand returns at once with a rich object (a run renders as
``application/vnd.conveyor.run+json``, which the lab extension keeps polling), except ``--wait``,
the one thing that blocks the kernel, and which updates its output in place while it does.
Settings come from the environment (as for the server extension) or ``%conveyor connect``, whose
password is read with ``getpass`` so it never lands in a cell, an output or the notebook file.
"""

from __future__ import annotations

import base64
import getpass
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from conveyor_jupyter import kedro_jobs, registry
from conveyor_jupyter.conf import ConfError, parse_conf, validate_conf
from conveyor_jupyter.runs import RunRefError, parse_run_ref, pending_approvals, run_view
from conveyor_jupyter.settings import ConveyorSettings
from conveyor_jupyter.views import BackfillView, DriftView, LogView, ModelView, RunListView, RunView


@magics_class
class ConveyorMagics(Magics):
    """Holds this kernel's connection overrides and the last run it triggered (``last``)."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._overrides: dict[str, str] = {}
        self.last_run: tuple[str, str] | None = None
        self.poll_interval = 2.0

    # --- plumbing --------------------------------------------------------------------------
    @property
    def settings(self) -> ConveyorSettings:
        return ConveyorSettings.from_env(**self._overrides)

    def _airflow(self):
        from conveyor.clients.airflow import AirflowClient

        s = self.settings
        return AirflowClient(s.airflow_url, s.username, s.password, timeout=30.0)

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Backend failures become one-line ``UsageError``s: a user needs the reason, not a traceback."""
        from conveyor.clients.airflow import AirflowError

        try:
            return fn()
        except (
            AirflowError,
            ConfError,
            RunRefError,
            registry.RegistryError,
            kedro_jobs.KedroJobError,
        ) as exc:
            raise UsageError(str(exc)) from None

    def _model_name(self, given: str | None, command: str) -> str:
        name = given or self.settings.default_model
        if not name:
            raise UsageError(
                f"which model? `%conveyor {command} <registered model>`, or set CONVEYOR_KEDRO_PROJECT to a "
                "Kedro project whose conf/base/conveyor.yml names it"
            )
        return name

    def _run_view(self, af: Any, dag_id: str, run_id: str) -> RunView:
        run = af.get_dag_run(dag_id, run_id)
        tasks = af.task_instances(dag_id, run_id)
        approvals = pending_approvals(af.hitl_details(dag_id, run_id, response_received=False))
        return run_view(self.settings, run, tasks, approvals)

    def _wait(self, view: RunView, refresh: Callable[[], RunView], timeout: float) -> RunView:
        """Update the output in place until the run ends; Ctrl-C (interrupt) stops waiting, not the run."""
        handle = display(view, display_id=True)
        deadline = time.monotonic() + timeout
        try:
            while not view.finished:
                if time.monotonic() > deadline:
                    view.message = (
                        f"still {view.state} after {timeout:.0f}s; stopped waiting (the run goes on)"
                    )
                    break
                time.sleep(self.poll_interval)
                view = refresh()
                done = sum(1 for t in view.tasks if t.get("state") in ("success", "skipped", "failed"))
                if view.tasks and not view.message:
                    view.message = f"{done}/{len(view.tasks)} tasks done"
                handle.update(view)
        except KeyboardInterrupt:
            view.message = "stopped waiting (the run goes on; %conveyor cancel to stop it)"
        handle.update(view)
        return view

    # --- entry point -----------------------------------------------------------------------
    @no_var_expand
    @line_cell_magic
    def conveyor(self, line: str, cell: str | None = None) -> Any:
        """Conveyor runs from the notebook. Subcommands (``%conveyor SUBCOMMAND -h`` for details):

        trigger, backfill, runs, status, logs, cancel, approve, kedro, models, drift, connect.
        """
        command, _, rest = line.strip().partition(" ")
        handler = SUBCOMMANDS.get(command)
        if handler is None:
            raise UsageError(f"unknown subcommand {command!r}; use one of: {', '.join(SUBCOMMANDS)}")
        method = getattr(self, handler)
        try:
            argv = shlex.split(rest)  # POSIX quoting, so --conf '{"a": 1}' arrives without its quotes
        except ValueError as exc:
            raise UsageError(f"cannot parse the arguments: {exc}") from None
        if {"-h", "--help"} & set(argv):
            print(method.parser.format_help())
            return None
        return method(method.parser.parse_args(argv), cell)

    # --- subcommands -----------------------------------------------------------------------
    @magic_arguments(name="conveyor trigger")
    @argument("dag_id", help="the DAG to run, e.g. ml_ci")
    @argument("--conf", default=None, help="run conf as JSON (in %%conveyor, the cell body: YAML or JSON)")
    @argument("--wait", action="store_true", help="block until the run ends, showing progress")
    @argument("--timeout", type=float, default=3600.0, help="seconds --wait waits at most")
    def _trigger(self, args: Any, cell: str | None) -> RunView | None:
        """Validate the conf against the DAG's params, then start a run."""
        if args.conf is not None and cell is not None:
            raise UsageError("give the conf either with --conf or as the cell body, not both")
        conf = self._call(lambda: parse_conf(cell if cell is not None else args.conf))
        with self._airflow() as af:
            details = self._call(lambda: af.dag_details(args.dag_id))
            self._call(lambda: validate_conf(args.dag_id, conf, details.get("params")))
            if details.get("is_paused"):
                self._call(lambda: af.unpause_dag(args.dag_id))
            run = self._call(lambda: af.trigger_dag_run(args.dag_id, conf))
            self.last_run = (args.dag_id, run["dag_run_id"])
            view = run_view(self.settings, run)
            if not args.wait:
                return view
            self._wait(view, lambda: self._call(lambda: self._run_view(af, *self.last_run)), args.timeout)
        return None

    @magic_arguments(name="conveyor backfill")
    @argument("dag_id")
    @argument("--from", dest="from_date", required=True, help="first logical date, e.g. 2013-01-01")
    @argument("--to", dest="to_date", required=True, help="last logical date, e.g. 2013-03-01")
    @argument("--conf", default=None, help="conf for every run, JSON (or the cell body)")
    @argument("--max-active-runs", type=int, default=1)
    def _backfill(self, args: Any, cell: str | None) -> BackfillView:
        """Runs for every schedule date in [from, to], one at a time by default."""
        conf = self._call(lambda: parse_conf(cell if cell is not None else args.conf))
        with self._airflow() as af:
            details = self._call(lambda: af.dag_details(args.dag_id))
            self._call(lambda: validate_conf(args.dag_id, conf, details.get("params")))
            backfill = self._call(
                lambda: af.create_backfill(
                    args.dag_id,
                    args.from_date,
                    args.to_date,
                    max_active_runs=args.max_active_runs,
                    dag_run_conf=conf,
                )
            )
        return BackfillView(backfill, self.settings.airflow_url)

    @magic_arguments(name="conveyor runs")
    @argument("dag_id", nargs="?", default="~", help="one DAG, or all when omitted")
    @argument("--limit", type=int, default=20)
    def _runs(self, args: Any, cell: str | None) -> RunListView:
        """Recent runs, newest first."""
        with self._airflow() as af:
            runs = self._call(lambda: af.list_dag_runs(args.dag_id, limit=args.limit))
        return RunListView([run_view(self.settings, r) for r in runs])

    @magic_arguments(name="conveyor status")
    @argument("run", help="DAG_ID/RUN_ID, or 'last'")
    @argument("--wait", action="store_true", help="block until the run ends, showing progress")
    @argument("--timeout", type=float, default=3600.0)
    def _status(self, args: Any, cell: str | None) -> RunView | None:
        """A run with its task states and open approvals."""
        dag_id, run_id = self._call(lambda: parse_run_ref(args.run, self.last_run))
        with self._airflow() as af:
            view = self._call(lambda: self._run_view(af, dag_id, run_id))
            if not args.wait:
                return view
            self._wait(view, lambda: self._call(lambda: self._run_view(af, dag_id, run_id)), args.timeout)
        return None

    @magic_arguments(name="conveyor logs")
    @argument("run", help="DAG_ID/RUN_ID, or 'last'")
    @argument("task_id")
    @argument("--try", dest="try_number", type=int, default=None, help="try number (default: latest)")
    def _logs(self, args: Any, cell: str | None) -> LogView:
        """The log of one task of a run."""
        from conveyor.clients.airflow import format_log

        dag_id, run_id = self._call(lambda: parse_run_ref(args.run, self.last_run))
        with self._airflow() as af:
            try_number = args.try_number
            if try_number is None:
                ti = self._call(lambda: af.task_instance(dag_id, run_id, args.task_id))
                try_number = max(1, ti.get("try_number") or 1)
            lines = self._call(lambda: af.task_log(dag_id, run_id, args.task_id, try_number))
        return LogView(dag_id, run_id, args.task_id, try_number, format_log(lines))

    @magic_arguments(name="conveyor cancel")
    @argument("run", help="DAG_ID/RUN_ID, or 'last'")
    def _cancel(self, args: Any, cell: str | None) -> RunView:
        """Mark the run failed; Airflow stops its running tasks."""
        dag_id, run_id = self._call(lambda: parse_run_ref(args.run, self.last_run))
        with self._airflow() as af:
            run = self._call(lambda: af.get_dag_run(dag_id, run_id))
            if run["state"] in ("success", "failed"):
                raise UsageError(
                    f"run {dag_id}/{run_id} already finished ({run['state']}); nothing to cancel"
                )
            self._call(lambda: af.cancel_dag_run(dag_id, run_id))
            return self._call(lambda: self._run_view(af, dag_id, run_id))

    @magic_arguments(name="conveyor approve")
    @argument("run", help="DAG_ID/RUN_ID, or 'last'")
    @argument("--task", default=None, help="the approval task (needed when several wait)")
    @argument("--reject", action="store_true", help="answer Reject instead of Approve")
    def _approve(self, args: Any, cell: str | None) -> RunView:
        """Answer the run's pending human approval (Airflow HITL)."""
        dag_id, run_id = self._call(lambda: parse_run_ref(args.run, self.last_run))
        with self._airflow() as af:
            pending = pending_approvals(
                self._call(lambda: af.hitl_details(dag_id, run_id, response_received=False))
            )
            names = [p["task_id"] for p in pending]
            task_id = args.task or (names[0] if len(names) == 1 else None)
            if task_id is None or task_id not in names:
                raise UsageError(
                    f"run {dag_id}/{run_id} has pending approvals: {', '.join(names) or 'none'}"
                    + ("" if task_id is None else f" (not {task_id!r})")
                )
            answer = af.reject if args.reject else af.approve
            self._call(lambda: answer(dag_id, run_id, task_id))
            return self._call(lambda: self._run_view(af, dag_id, run_id))

    @magic_arguments(name="conveyor kedro")
    @argument("pipeline", nargs="?", default="__default__")
    @argument("--params", nargs="*", default=[], help="Kedro runtime params, name=value ...")
    @argument("--project", default=None, help="Kedro project folder (default: CONVEYOR_KEDRO_PROJECT)")
    @argument("--wait", action="store_true", help="block until the run ends")
    @argument("--timeout", type=float, default=3600.0)
    def _kedro(self, args: Any, cell: str | None) -> RunView | None:
        """Run a Kedro pipeline in a child process (tracked in MLflow by the project's hooks)."""
        s = self.settings
        project = Path(args.project or s.kedro_project or "kedro_project").resolve()
        env = {"MLFLOW_TRACKING_URI": s.mlflow_uri} if s.mlflow_uri else {}
        job = self._call(
            lambda: kedro_jobs.start(project, args.pipeline, args.params, kedro_jobs.jobs_root(), env)
        )
        view = job.view(s.mlflow_link_base)
        if not args.wait:
            return view
        self._wait(view, lambda: job.view(s.mlflow_link_base), args.timeout)
        return None

    @magic_arguments(name="conveyor models")
    @argument("name", nargs="?", default=None, help="registered model (default: the Kedro project's)")
    def _models(self, args: Any, cell: str | None) -> ModelView:
        """Versions, aliases, metrics, gate results, lineage and contract; champion vs challenger."""
        s = self.settings
        name = self._model_name(args.name, "models")
        return ModelView(self._call(lambda: registry.model_summary(s.mlflow_uri, name)), s.mlflow_link_base)

    @magic_arguments(name="conveyor drift")
    @argument("name", nargs="?", default=None, help="registered model (default: the Kedro project's)")
    def _drift(self, args: Any, cell: str | None) -> DriftView:
        """The latest drift report of a model, with its plots."""
        s = self.settings
        name = self._model_name(args.name, "drift")
        summary = self._call(lambda: registry.drift_summary(s.mlflow_uri, name))
        plots = {
            path: base64.b64encode(
                self._call(lambda p=path: registry.artifact_bytes(s.mlflow_uri, summary["run_id"], p))
            ).decode()
            for path in summary["plots"]
        }
        return DriftView(summary, plots)

    @magic_arguments(name="conveyor connect")
    @argument("--airflow-url", default=None)
    @argument("--username", default=None)
    @argument("--mlflow-uri", default=None)
    @argument("--password", action="store_true", help="prompt for the Airflow password (never echoed)")
    def _connect(self, args: Any, cell: str | None) -> None:
        """Point this kernel at other services than the environment says."""
        for key, value in (
            ("airflow_url", args.airflow_url),
            ("username", args.username),
            ("mlflow_uri", args.mlflow_uri),
        ):
            if value:
                self._overrides[key] = value
        if args.password:
            self._overrides["password"] = getpass.getpass("Airflow password: ")
        print(f"Conveyor: {self.settings!r}")


SUBCOMMANDS = {
    "trigger": "_trigger",
    "backfill": "_backfill",
    "runs": "_runs",
    "status": "_status",
    "logs": "_logs",
    "cancel": "_cancel",
    "approve": "_approve",
    "kedro": "_kedro",
    "models": "_models",
    "drift": "_drift",
    "connect": "_connect",
}

ConveyorMagics.conveyor.__doc__ = (ConveyorMagics.conveyor.__doc__ or "") + "\n".join(
    getattr(ConveyorMagics, name).parser.format_usage() for name in SUBCOMMANDS.values()
)
