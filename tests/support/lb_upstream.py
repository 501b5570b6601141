"""A stand-in gateway replica for the load balancer tests: uvicorn (httptools, uvloop) as the gateway runs.

It answers every request with its own port in ``X-Upstream`` and the request's ``X-Request-Id``
echoed, and appends each request it received (before answering) to a journal, so a test can
prove which replica saw a request even when that replica died on it. Like the gateway, it answers
413 from the declared ``Content-Length`` without reading the body.

    python -m tests.support.lb_upstream --port N --journal FILE [--invocations-status 503] [--die-on /admin/]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

MAX_BODY_BYTES = 1 << 20  # the gateway's default limit


def make_app(port: int, journal: Path, invocations_status: int, die_on: str | None) -> Callable:
    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        entry = {
            "method": scope["method"],
            "path": scope["path"],
            "request_id": headers.get("x-request-id"),
            "client_port": scope["client"][1],
        }
        with open(journal, "a") as out:
            out.write(json.dumps(entry) + "\n")
        if die_on is not None and scope["path"].startswith(die_on):
            os._exit(1)  # mid-request: the connection closes with no answer
        status, body = 200, {"upstream": port}
        if int(headers.get("content-length") or 0) > MAX_BODY_BYTES:
            status, body = 413, {"error_code": "REQUEST_LIMIT_EXCEEDED", "upstream": port}
        else:
            while (await receive()).get("more_body"):
                pass
            if scope["path"].endswith("/invocations") and invocations_status != 200:
                status = invocations_status
        raw = json.dumps(body).encode()
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (b"x-upstream", str(port).encode()),
        ]
        if entry["request_id"] is not None:
            response_headers.append((b"x-request-id", entry["request_id"].encode()))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": raw})

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--invocations-status", type=int, default=200)
    parser.add_argument("--die-on", help="die on receiving a request whose path starts with this")
    args = parser.parse_args()
    app = make_app(args.port, args.journal, args.invocations_status, args.die_on)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
