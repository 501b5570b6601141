"""MLflow deployments plugin, target ``conveyor``: MLflow's CLI and API drive a Conveyor gateway.

``mlflow deployments create -t conveyor --name my-model -m models:/my_model@champion`` loads
a first version; ``update`` rolls a new one out with a traffic strategy, chosen through ``-C``:

    -C strategy=canary|blue_green|shadow  -C steps=10,50,100  -C interval_s=30  -C count=3
    -C failure_limit=0  -C min_requests=20  -C max_error_rate=0.01  -C max_score_shift=0.3
    -C shadow_fraction=0.1  -C keep_previous_s=300  -C wait=true  -C timeout=3600

MLflow's plugin interface has no traffic strategies (SageMaker's ``add`` mode leaves the new
variant at weight 0); here they are plain config keys. Target URIs: ``conveyor`` (gateway from
``$CONVEYOR_GATEWAY_URL``) or ``conveyor:/host:port``; the admin token is read from
``$CONVEYOR_GATEWAY_TOKEN`` so it never appears on a command line.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mlflow.deployments import BaseDeploymentClient, PredictionsResponse
from mlflow.exceptions import MlflowException

from conveyor.clients.gateway import GatewayClient, GatewayClientError

_ANALYSIS_KEYS = {
    "interval_s": float,
    "count": int,
    "failure_limit": int,
    "inconclusive_limit": int,
    "min_requests": int,
    "max_error_rate": float,
    "max_p95_latency_ratio": float,
    "max_p95_latency_s": float,
    "max_score_shift": float,
    "max_online_degradation": float,
}
_ROLLOUT_KEYS = {"strategy": str, "steps": str, "shadow_fraction": float, "keep_previous_s": float}
_CLIENT_KEYS = {"wait": str, "timeout": float}


def _gateway_url(target_uri: str) -> str:
    _, _, rest = target_uri.partition(":")
    rest = rest.lstrip("/")
    if rest:
        return rest if rest.startswith(("http://", "https://")) else f"http://{rest}"
    return os.environ.get("CONVEYOR_GATEWAY_URL", "http://127.0.0.1:8080")


def _typed(config: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(rollout spec settings, client settings) from ``-C`` strings, naming unknown keys."""
    config = dict(config or {})
    known = {**_ANALYSIS_KEYS, **_ROLLOUT_KEYS, **_CLIENT_KEYS}
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise MlflowException(f"unknown config key(s) {unknown} for target conveyor; known: {sorted(known)}")
    try:
        typed = {k: known[k](v) for k, v in config.items()}
    except ValueError as exc:
        raise MlflowException(f"bad config value: {exc}") from None
    spec = {k: v for k, v in typed.items() if k in _ROLLOUT_KEYS}
    analysis = {k: v for k, v in typed.items() if k in _ANALYSIS_KEYS}
    if analysis:
        spec["analysis"] = analysis
    client = {k: v for k, v in typed.items() if k in _CLIENT_KEYS}
    client["wait"] = str(client.get("wait", "true")).lower() not in ("0", "false", "no")
    return spec, client


class ConveyorDeploymentClient(BaseDeploymentClient):
    """Deployments are the gateway's deployments; see the module docstring for config keys."""

    def __init__(self, target_uri: str) -> None:
        super().__init__(target_uri)
        self.gateway = GatewayClient(_gateway_url(target_uri), os.environ.get("CONVEYOR_GATEWAY_TOKEN"))

    def _do(self, call, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except GatewayClientError as exc:
            code = "RESOURCE_DOES_NOT_EXIST" if exc.status == 404 else "INVALID_PARAMETER_VALUE"
            raise MlflowException(str(exc), error_code=code) from exc

    def create_deployment(self, name, model_uri, flavor=None, config=None, endpoint=None):
        _typed(config)
        if self._do(self.gateway.exists, name):
            raise MlflowException(f"deployment '{name}' already exists; use update_deployment to roll out")
        deployment = self._do(self.gateway.deploy_slot, name, model_uri)
        return {"name": name, "flavor": flavor or "python_function", **_summary(deployment)}

    def update_deployment(self, name, model_uri=None, flavor=None, config=None, endpoint=None):
        spec, client = _typed(config)
        if model_uri is None:
            raise MlflowException("update_deployment needs model_uri: the version to roll out")
        self._do(self.gateway.start_rollout, name, {"model_uri": model_uri, **spec})
        if client["wait"]:
            rollout = self._do(self.gateway.wait_rollout, name, timeout=client.get("timeout", 3600.0))
            if rollout["state"] not in ("succeeded", "switched"):
                reason = (
                    rollout["transitions"][-1]["reason"] if rollout.get("transitions") else rollout["state"]
                )
                raise MlflowException(
                    f"rollout of {model_uri} to '{name}' ended {rollout['state']}: {reason}"
                )
        deployment = self._do(self.gateway.deployment, name)
        return {"name": name, "flavor": flavor or "python_function", **_summary(deployment)}

    def delete_deployment(self, name, config=None, endpoint=None):
        if self._do(self.gateway.exists, name):
            self._do(self.gateway.delete, name)

    def list_deployments(self, endpoint=None):
        status = self._do(self.gateway.status)
        return [{"name": name, **_summary(d)} for name, d in status["deployments"].items()]

    def get_deployment(self, name, endpoint=None):
        return {"name": name, **_summary(self._do(self.gateway.deployment, name))}

    def predict(self, deployment_name=None, inputs=None, endpoint=None):
        response = self.gateway.predict(_payload(inputs), deployment=deployment_name)
        if response.status_code != 200:
            raise MlflowException(f"gateway answered {response.status_code}: {response.text}")
        return PredictionsResponse.from_json(response.text)


def _summary(deployment: dict[str, Any]) -> dict[str, Any]:
    slots = deployment.get("slots", {})
    rollout = deployment.get("rollout") or {}
    return {
        "model_uri": slots.get("stable", {}).get("model_uri"),
        "model_version": slots.get("stable", {}).get("model_version"),
        "slots": {
            slot: {"model_version": s["model_version"], "weight": s["weight"]} for slot, s in slots.items()
        },
        "rollout_state": rollout.get("state"),
    }


def _payload(inputs: Any) -> dict[str, Any]:
    import pandas as pd

    if isinstance(inputs, pd.DataFrame):
        return {"dataframe_split": json.loads(inputs.to_json(orient="split", index=False))}
    if isinstance(inputs, dict):
        return inputs
    raise MlflowException("inputs must be a pandas DataFrame or an MLflow scoring JSON dict")


def run_local(target, name, model_uri, flavor=None, config=None):
    """Serve ``model_uri`` as deployment ``name`` in a foreground gateway on this machine."""
    from conveyor.cli import main

    token_note = "" if os.environ.get("CONVEYOR_GATEWAY_TOKEN") else " (set CONVEYOR_GATEWAY_TOKEN first)"
    print(f"starting a Conveyor gateway serving {model_uri} as '{name}'{token_note}")
    main(["serve", f"--deploy={name}={model_uri}"])


def target_help():
    return __doc__
