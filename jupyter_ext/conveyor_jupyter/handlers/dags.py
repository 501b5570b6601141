"""DAGs, their params (for the trigger form) and triggering a run."""

from __future__ import annotations

from tornado import web

from conveyor_jupyter.conf import param_specs, validate_conf
from conveyor_jupyter.handlers.base import BadRequest, ConveyorHandler, backend_errors
from conveyor_jupyter.runs import run_view


class DagsHandler(ConveyorHandler):
    @web.authenticated
    @backend_errors
    async def get(self) -> None:
        dags = await self.airflow.list_dags()
        self.send(
            {
                "dags": [
                    {
                        "dag_id": d["dag_id"],
                        "is_paused": d.get("is_paused"),
                        "description": d.get("description"),
                        "tags": [t["name"] for t in d.get("tags") or []],
                    }
                    for d in dags
                ]
            }
        )


class DagHandler(ConveyorHandler):
    @web.authenticated
    @backend_errors
    async def get(self, dag_id: str) -> None:
        details = await self.airflow.dag_details(dag_id)
        self.send(
            {
                "dag_id": details["dag_id"],
                "description": details.get("description"),
                "is_paused": details.get("is_paused"),
                "params": param_specs(details.get("params")),
            }
        )


class TriggerHandler(ConveyorHandler):
    """POST ``{"conf": {...}}``: validated against the DAG's params before Airflow sees it."""

    @web.authenticated
    @backend_errors
    async def post(self, dag_id: str) -> None:
        body = self.json_body()
        conf = body.get("conf") or {}
        if not isinstance(conf, dict):
            raise BadRequest("conf must be a JSON object")
        details = await self.airflow.dag_details(dag_id)
        validate_conf(dag_id, conf, details.get("params"))
        if details.get("is_paused"):
            await self.airflow.unpause_dag(dag_id)
        run = await self.airflow.trigger_dag_run(dag_id, conf)
        tasks = await self.airflow.task_instances(dag_id, run["dag_run_id"])
        self.send(run_view(self.conveyor, run, tasks).to_json(), status=201)
