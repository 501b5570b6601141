"""The gateway's HTTP face: a raw-ASGI scoring path in front of a Starlette app for the rest.

Scoring requests skip Starlette's routing, Request and Response objects (tens of microseconds
each, on every request); everything else (health, metrics, admin, feedback) is ordinary Starlette.
Both read bodies the same way: JSON only (415), at most ``max_body_bytes`` (413, checked on
``Content-Length`` and while streaming), decodable (400), then one typed schema per endpoint (422).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conveyor.serving.bodies import (
    FeedbackBody,
    MalformedBody,
    PromoteBody,
    RollbackBody,
    SlotBody,
    WeightsBody,
    decode_json,
    parse_rollout,
)
from conveyor.serving.gateway import Gateway, GatewayError
from conveyor.serving.schema import InvalidInput, preview

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


def declared_length(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def content_type_problem(value: str | None) -> str | None:
    """Why a body of this ``Content-Type`` is refused (415); no header at all means JSON."""
    media = (value or "application/json").split(";")[0].strip().lower()
    if media == "application/json":
        return None
    return f"unsupported content type {media[:60]!r}: send application/json"


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"request body larger than {limit} bytes")


def _json_error(exc: GatewayError) -> bytes:
    return json.dumps(exc.body()).encode()


def if_match(request: Request) -> int | None:
    """The generation an admin write is conditional on (``If-Match: 7`` or ``"7"``), as an ETag
    would be: a write against a deployment that moved on since is refused with 409."""
    value = request.headers.get("if-match")
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:
        raise GatewayError(
            422, f"header 'If-Match' must be a deployment generation, got {preview(value)}", field="if-match"
        )
    return int(text)


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
    limit = gateway.config.max_body_bytes

    def authorize(request: Request) -> None:
        header = request.headers.get("authorization")
        if not header:
            raise GatewayError(401, "admin API: missing 'Authorization: Bearer <token>' header")
        scheme, _, token = header.partition(" ")
        expected = gateway.config.admin_token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise GatewayError(403, "admin API: wrong token")

    def endpoint(
        handler: Callable[[Request], Awaitable[Any]], admin: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        """Refusals as ``{"error_code", "message"[, "field"]}``; admin endpoints check the token first."""

        async def run(request: Request) -> Response:
            try:
                if admin:
                    authorize(request)
                result = await handler(request)
            except InvalidInput as exc:
                return JSONResponse(GatewayError(422, str(exc), field=exc.field).body(), status_code=422)
            except GatewayError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            return JSONResponse(result)

        return run

    async def json_body(request: Request, empty: Any = None) -> Any:
        """The decoded body; an empty body is ``empty`` where the endpoint's fields are all optional."""
        problem = content_type_problem(request.headers.get("content-type"))
        if problem is not None:
            raise GatewayError(415, problem)
        try:
            body = await read_body(
                request.receive, limit, declared_length(request.headers.get("content-length"))
            )
        except BodyTooLarge:
            raise too_large(limit) from None
        if not body and empty is not None:
            return empty
        try:
            return decode_json(body)
        except MalformedBody as exc:
            raise GatewayError(400, str(exc)) from None

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        ok = gateway.ready
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(gateway.metrics.render(), media_type=gateway.metrics.content_type)

    async def feedback(request: Request) -> Any:
        return await gateway.feedback(FeedbackBody.parse(await json_body(request)))

    async def list_deployments(request: Request) -> Any:
        return gateway.status()

    async def get_deployment(request: Request) -> Any:
        return await gateway.describe(request.path_params["name"])

    async def put_slot(request: Request) -> Any:
        body = SlotBody.parse(await json_body(request))
        name, slot = request.path_params["name"], request.path_params["slot"]
        return (await gateway.deploy_slot(name, slot, body.model_uri, if_match(request))).to_dict()

    async def delete_slot(request: Request) -> Any:
        name, slot = request.path_params["name"], request.path_params["slot"]
        return (await gateway.remove_slot(name, slot, if_match(request))).to_dict()

    async def put_weights(request: Request) -> Any:
        body = WeightsBody.parse(await json_body(request))
        name = request.path_params["name"]
        return (await gateway.set_weights(name, body.canary, body.shadow, if_match(request))).to_dict()

    async def promote(request: Request) -> Any:
        body = PromoteBody.parse(await json_body(request, empty={}))
        return (await gateway.promote(request.path_params["name"], body.slot, if_match(request))).to_dict()

    async def rollback(request: Request) -> Any:
        body = RollbackBody.parse(await json_body(request, empty={}))
        name = request.path_params["name"]
        return (await gateway.rollback(name, body.model_uri, if_match(request))).to_dict()

    async def reload(request: Request) -> Any:
        return (await gateway.reload(request.path_params["name"], if_match(request))).to_dict()

    async def delete_deployment(request: Request) -> Any:
        await gateway.delete(request.path_params["name"], if_match(request))
        return {"deleted": request.path_params["name"]}

    async def start_rollout(request: Request) -> Any:
        spec = parse_rollout(await json_body(request))
        return await gateway.start_rollout(request.path_params["name"], spec, if_match(request))

    async def rollout_action(request: Request) -> Any:
        name, action = request.path_params["name"], request.path_params["action"]
        return await gateway.rollout_action(name, action, if_match(request))

    base = "/admin/deployments/{name}"
    routes = [
        Route("/health", health),
        Route("/ping", health),
        Route("/ready", ready),
        Route("/metrics", metrics),
        Route("/feedback", endpoint(feedback, admin=False), methods=["POST"]),
        Route("/admin/deployments", endpoint(list_deployments)),
        Route(base, endpoint(get_deployment)),
        Route(base, endpoint(delete_deployment), methods=["DELETE"]),
        Route(base + "/slots/{slot}", endpoint(put_slot), methods=["PUT", "POST"]),
        Route(base + "/slots/{slot}", endpoint(delete_slot), methods=["DELETE"]),
        Route(base + "/weights", endpoint(put_weights), methods=["PUT", "POST"]),
        Route(base + "/promote", endpoint(promote), methods=["POST"]),
        Route(base + "/rollback", endpoint(rollback), methods=["POST"]),
        Route(base + "/reload", endpoint(reload), methods=["POST"]),
        Route(base + "/rollouts", endpoint(start_rollout), methods=["POST"]),
        Route(base + "/rollout/{action}", endpoint(rollout_action), methods=["POST"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette):
        try:
            if startup is not None:
                await startup(gateway)
            yield
        finally:
            await gateway.close()

    async def http_error(request: Request, exc: HTTPException) -> Response:
        """Starlette's own refusals (unknown path 404, wrong method 405) in the gateway's error shape."""
        error = GatewayError(exc.status_code, str(exc.detail))
        return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)

    rest = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})

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
            await respond(send, 405, _json_error(GatewayError(405, "use POST for invocations")), {})
            return
        problem = content_type_problem(headers.get("content-type"))
        if problem is not None:
            await respond(send, 415, _json_error(GatewayError(415, problem + " (MLflow scoring JSON)")), {})
            return
        try:
            body = await read_body(receive, limit, declared_length(headers.get("content-length")))
        except BodyTooLarge:
            await respond(send, 413, _json_error(too_large(limit)), {})
            return
        scored = await gateway.score(name, body, headers)
        await respond(send, scored.status, scored.body, scored.headers)

    return app


async def respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw.extend((k.encode(), v.encode()) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
