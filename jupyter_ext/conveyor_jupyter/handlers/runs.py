"""Run lists, run detail (tasks, approvals, links), task logs, cancel and approve."""

from __future__ import annotations

import asyncio

from tornado import web

from conveyor_jupyter.handlers.base import BadRequest, ConveyorHandler, backend_errors
from conveyor_jupyter.runs import pending_approvals, run_view


class RunsHandler(ConveyorHandler):
    """GET ``?dag_id=&limit=``: newest runs first, of one DAG or of all."""

    @web.authenticated
    @backend_errors
    async def get(self) -> None:
        dag_id = self.get_query_argument("dag_id", "~") or "~"
        try:
            limit = int(self.get_query_argument("limit", "25"))
        except ValueError:
            raise BadRequest("limit must be an integer") from None
        runs = await self.airflow.list_dag_runs(dag_id, limit=max(1, min(limit, 200)))
        self.send({"runs": [run_view(self.conveyor, r).to_json() for r in runs]})


class RunHandler(ConveyorHandler):
    """GET one run with its tasks and open approvals: what the renderer and detail view poll."""

    @web.authenticated
    @backend_errors
    async def get(self, dag_id: str, run_id: str) -> None:
        run, tasks, hitl = await asyncio.gather(
            self.airflow.get_dag_run(dag_id, run_id),
            self.airflow.task_instances(dag_id, run_id),
            self.airflow.hitl_details(dag_id, run_id, response_received=False),
        )
        self.send(run_view(self.conveyor, run, tasks, pending_approvals(hitl)).to_json())


class CancelHandler(ConveyorHandler):
    """POST: mark the run failed, as Airflow's UI does; its running tasks are stopped."""

    @web.authenticated
    @backend_errors
    async def post(self, dag_id: str, run_id: str) -> None:
        run = await self.airflow.get_dag_run(dag_id, run_id)
        if run["state"] in ("success", "failed"):
            raise BadRequest(f"run {dag_id}/{run_id} already finished ({run['state']}); nothing to cancel")
        await self.airflow.cancel_dag_run(dag_id, run_id)
        run = await self.airflow.get_dag_run(dag_id, run_id)
        self.send(run_view(self.conveyor, run).to_json())


class ApproveHandler(ConveyorHandler):
    """POST ``{"task_id": ..., "approve": true|false}`` answers a pending approval of the run."""

    @web.authenticated
    @backend_errors
    async def post(self, dag_id: str, run_id: str) -> None:
        body = self.json_body()
        approve = body.get("approve", True)
        if not isinstance(approve, bool):
            raise BadRequest("approve must be true or false")
        pending = pending_approvals(await self.airflow.hitl_details(dag_id, run_id, response_received=False))
        task_id = body.get("task_id") or (pending[0]["task_id"] if len(pending) == 1 else None)
        if task_id is None:
            names = ", ".join(p["task_id"] for p in pending) or "none"
            raise BadRequest(f"name the task to answer: pending approvals of {dag_id}/{run_id}: {names}")
        if task_id not in {p["task_id"] for p in pending}:
            raise BadRequest(f"task {task_id!r} of {dag_id}/{run_id} is not awaiting approval")
        answer = self.airflow.approve if approve else self.airflow.reject
        result = await answer(dag_id, run_id, task_id)
        self.send({"task_id": task_id, "chosen_options": result.get("chosen_options"), "approved": approve})


class LogHandler(ConveyorHandler):
    """GET ``?try_number=``: the task log as text (latest try by default)."""

    @web.authenticated
    @backend_errors
    async def get(self, dag_id: str, run_id: str, task_id: str) -> None:
        from conveyor.clients.airflow import format_log

        try_arg = self.get_query_argument("try_number", "")
        if try_arg:
            try:
                try_number = int(try_arg)
            except ValueError:
                raise BadRequest("try_number must be an integer") from None
        else:
            ti = await self.airflow.task_instance(dag_id, run_id, task_id)
            try_number = max(1, ti.get("try_number") or 1)
        lines = await self.airflow.task_log(dag_id, run_id, task_id, try_number)
        self.send(
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "task_id": task_id,
                "try_number": try_number,
                "text": format_log(lines),
            }
        )


class ApprovalsHandler(ConveyorHandler):
    """GET: every open approval request, for the panel's badge."""

    @web.authenticated
    @backend_errors
    async def get(self) -> None:
        hitl = await self.airflow.hitl_details(response_received=False)
        self.send({"approvals": pending_approvals(hitl)})
