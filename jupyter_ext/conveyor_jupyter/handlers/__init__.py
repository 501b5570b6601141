"""Routes of the Conveyor server extension, relative to the server's base URL."""

from __future__ import annotations

from conveyor_jupyter.handlers.config import ConfigHandler
from conveyor_jupyter.handlers.dags import DagHandler, DagsHandler, TriggerHandler
from conveyor_jupyter.handlers.kedro import KedroRunHandler
from conveyor_jupyter.handlers.mlflow import ArtifactHandler, DriftHandler, ModelHandler
from conveyor_jupyter.handlers.runs import (
    ApprovalsHandler,
    ApproveHandler,
    CancelHandler,
    LogHandler,
    RunHandler,
    RunsHandler,
)

_SEG = r"([^/]+)"

HANDLERS = [
    (r"conveyor/config", ConfigHandler),
    (r"conveyor/dags", DagsHandler),
    (rf"conveyor/dags/{_SEG}", DagHandler),
    (rf"conveyor/dags/{_SEG}/runs", TriggerHandler),
    (r"conveyor/runs", RunsHandler),
    (rf"conveyor/runs/{_SEG}/{_SEG}", RunHandler),
    (rf"conveyor/runs/{_SEG}/{_SEG}/cancel", CancelHandler),
    (rf"conveyor/runs/{_SEG}/{_SEG}/approve", ApproveHandler),
    (rf"conveyor/runs/{_SEG}/{_SEG}/tasks/{_SEG}/logs", LogHandler),
    (r"conveyor/approvals", ApprovalsHandler),
    (rf"conveyor/models/{_SEG}", ModelHandler),
    (rf"conveyor/drift/{_SEG}", DriftHandler),
    (rf"conveyor/artifacts/{_SEG}", ArtifactHandler),
    (rf"conveyor/kedro/{_SEG}", KedroRunHandler),
]
