"""The gateway's HTTP face: a raw-ASGI scoring path in front of a Starlette app for the rest.

Scoring requests skip Starlette's routing, Request and Response objects (tens of microseconds
each, on every request); everything else (health, metrics, admin, feedback) is ordinary Starlette.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conveyor.core.rollout import RolloutSpec
from conveyor.serving.gateway import Gateway, GatewayError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int, declared: int | None) -> bytes:
    """The request body, refused past ``limit`` bytes before reading it all where the size is declared."""
    if declared is not None and declared > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json_error(status: int, message: str) -> bytes:
    return json.dumps(
        {"error_code": GatewayError(status, message).body()["error_code"], "message": message}
    ).encode()


def scoring_deployment(path: str) -> tuple[bool, str | None]:
    """``(is scoring path, deployment name)`` for ``/invocations`` and ``/deployments/<name>/invocations``."""
    if path == "/invocations":
        return True, None
    parts = path.split("/")
    if len(parts) == 4 and parts[1] == "deployments" and parts[3] == "invocations" and parts[2]:
        return True, parts[2]
    return False, None


def create_app(gateway: Gateway, startup: Callable[[Gateway], Awaitable[None]] | None = None) -> Callable:
    """The ASGI application; ``startup`` runs once the event loop exists (initial model loads)."""

    def authorize(request: Request) -> None:
        header = request.headers.get("authorization")
        if not header:
            raise GatewayError(401, "admin API: missing 'Authorization: Bearer <token>' header")
        scheme, _, token = header.partition(" ")
        expected = gateway.config.admin_token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise GatewayError(403, "admin API: wrong token")

    def admin(handler: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                authorize(request)
                result = await handler(request)
            except GatewayError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            except ValueError as exc:  # bad settings in a rollout spec or weights
                return JSONResponse(GatewayError(422, str(exc)).body(), status_code=422)
            return JSONResponse(result)

        return endpoint

    async def body_json(request: Request) -> dict[str, Any]:
        try:
            payload = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise GatewayError(400, f"malformed JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise GatewayError(422, "the body must be a JSON object")
        return payload

    def required(payload: dict[str, Any], key: str) -> Any:
        if key not in payload:
            raise GatewayError(422, f"missing field '{key}'", field=key)
        return payload[key]

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        ok = gateway.ready
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(gateway.metrics.render(), media_type=gateway.metrics.content_type)

    async def feedback(request: Request) -> Response:
        try:
            result = gateway.feedback(await body_json_any(request))
        except GatewayError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        return JSONResponse(result)

    async def body_json_any(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError as exc:
            raise GatewayError(400, f"malformed JSON: {exc}") from None

    async def list_deployments(request: Request) -> Any:
        return gateway.status()

    async def get_deployment(request: Request) -> Any:
        return gateway.deployment(request.path_params["name"]).to_dict()

    async def put_slot(request: Request) -> Any:
        payload = await body_json(request)
        name, slot = request.path_params["name"], request.path_params["slot"]
        deployment = await gateway.deploy_slot(name, slot, str(required(payload, "model_uri")))
        return deployment.to_dict()

    async def delete_slot(request: Request) -> Any:
        return gateway.remove_slot(request.path_params["name"], request.path_params["slot"]).to_dict()

    async def put_weights(request: Request) -> Any:
        payload = await body_json(request)
        return gateway.set_weights(
            request.path_params["name"], payload.get("canary"), payload.get("shadow")
        ).to_dict()

    async def promote(request: Request) -> Any:
        payload = await body_json(request)
        return gateway.promote(request.path_params["name"], payload.get("slot", "canary")).to_dict()

    async def rollback(request: Request) -> Any:
        payload = await body_json(request)
        return (await gateway.rollback(request.path_params["name"], payload.get("model_uri"))).to_dict()

    async def reload(request: Request) -> Any:
        return (await gateway.reload(request.path_params["name"])).to_dict()

    async def delete_deployment(request: Request) -> Any:
        gateway.delete(request.path_params["name"])
        return {"deleted": request.path_params["name"]}

    async def start_rollout(request: Request) -> Any:
        spec = RolloutSpec.from_dict(await body_json(request))
        return gateway.start_rollout(request.path_params["name"], spec).to_dict()

    async def rollout_action(request: Request) -> Any:
        return gateway.rollout_action(request.path_params["name"], request.path_params["action"]).to_dict()

    base = "/admin/deployments/{name}"
    routes = [
        Route("/health", health),
        Route("/ping", health),
        Route("/ready", ready),
        Route("/metrics", metrics),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/admin/deployments", admin(list_deployments)),
        Route(base, admin(get_deployment)),
        Route(base, admin(delete_deployment), methods=["DELETE"]),
        Route(base + "/slots/{slot}", admin(put_slot), methods=["PUT", "POST"]),
        Route(base + "/slots/{slot}", admin(delete_slot), methods=["DELETE"]),
        Route(base + "/weights", admin(put_weights), methods=["PUT", "POST"]),
        Route(base + "/promote", admin(promote), methods=["POST"]),
        Route(base + "/rollback", admin(rollback), methods=["POST"]),
        Route(base + "/reload", admin(reload), methods=["POST"]),
        Route(base + "/rollouts", admin(start_rollout), methods=["POST"]),
        Route(base + "/rollout/{action}", admin(rollout_action), methods=["POST"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette):
        if startup is not None:
            await startup(gateway)
        yield
        await gateway.close()

    rest = Starlette(routes=routes, lifespan=lifespan)
    limit = gateway.config.max_body_bytes

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            is_scoring, name = scoring_deployment(scope["path"])
            if is_scoring:
                await score(scope, receive, send, name)
                return
        await rest(scope, receive, send)

    async def score(scope: Scope, receive: Receive, send: Send, name: str | None) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] != "POST":
            await respond(send, 405, _json_error(405, "use POST for invocations"), {})
            return
        content_type = headers.get("content-type", "application/json").split(";")[0].strip()
        if content_type != "application/json":
            message = (
                f"unsupported content type '{content_type}': send application/json (MLflow scoring JSON)"
            )
            await respond(send, 415, _json_error(415, message), {})
            return
        declared = headers.get("content-length")
        try:
            body = await read_body(receive, limit, int(declared) if declared and declared.isdigit() else None)
        except BodyTooLarge:
            await respond(send, 413, _json_error(413, f"request body larger than {limit} bytes"), {})
            return
        scored = await gateway.score(name, body, headers)
        await respond(send, scored.status, scored.body, scored.headers)

    return app


async def respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw.extend((k.encode(), v.encode()) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
