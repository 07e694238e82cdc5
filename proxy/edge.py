"""Pure-ASGI edge middleware: request ids, response headers, metrics, and a last-resort 500.

It is pure ASGI (not BaseHTTPMiddleware) because it wraps every call, streaming included, and must
add no measurable latency. An exception that escapes a route is answered in OpenAI's error shape
and logged by type only: exception messages may quote request content.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from .errors import error_response_bytes
from .exchange import Exchange
from .metrics import METRICS

log = logging.getLogger("mixguard.edge")

ROUTES = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/models": "models",
}


#: A client's x-request-id is kept only if it looks like an id (digits among letters, no '@', no
#: spaces): it is echoed in headers, logs and the audit record, and a client could send an email.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{7,127}")


def request_id(given: str | None) -> tuple[str, str | None]:
    """The request id to use, and the hash of the client's value when it was not usable."""
    if given is not None and _REQUEST_ID.fullmatch(given) and any(c.isdigit() for c in given):
        return given, None
    return uuid.uuid4().hex, (hashlib.sha256(given.encode("utf-8", "replace")).hexdigest()[:16] if given else None)


class EdgeMiddleware:
    def __init__(self, app: Any, on_done: Callable[[Exchange, int], None] | None = None) -> None:
        self.app = app
        self.on_done = on_done  # gets (the exchange, status) once the response is sent: the record stage

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                given = v.decode("latin-1")
                break
        rid, given_hash = request_id(given)
        ex = Exchange(rid, client_request_id_sha256=given_hash)
        scope.setdefault("state", {})["exchange"] = ex
        started = False
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: dict) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode("latin-1")))
                headers.append((b"x-mixguard-backend", (ex.backend or "none").encode("latin-1")))
                for k, v in ex.headers.items():
                    headers.append((k.encode("latin-1"), v.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:  # last resort: never a stack trace to the caller or raw text to logs
            log.error("unhandled %s on %s (request %s)", type(exc).__name__, scope.get("path"), rid)
            if not started:
                body = error_response_bytes(500, "Internal error in the gateway", "api_error", "internal_error")
                await send_wrapper(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send_wrapper({"type": "http.response.body", "body": body})
        finally:
            if self.on_done is not None:
                try:
                    self.on_done(ex, status)
                except Exception as exc:  # auditing must never break a response already sent
                    log.error("audit hook failed with %s (request %s)", type(exc).__name__, rid)
            route = ROUTES.get(scope.get("path", ""))
            if route is not None:
                labels = (route, ex.model or "", ex.backend or "none", str(status))
                METRICS.requests.labels(*labels).inc()
                METRICS.latency.labels(*labels).observe(time.perf_counter() - t0)
