"""App factory and the OpenAI-compatible routes.

One request walks: edge middleware (request id, metrics) → auth → body checks → guardrails (input)
→ router (SGLang first, hosted fallbacks) → guardrails (output) → response.
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response, StreamingResponse

from guardrails.base import GuardContext
from guardrails.pipeline import Pipeline

from . import errors, responses_api, validation
from .auth import KeyStore, Principal
from .backends import BackendError
from .edge import EdgeMiddleware
from .metrics import METRICS
from .redis_store import RedisHandle
from .routing import RouteResult, Router
from .settings import GatewayConfig

log = logging.getLogger("mixguard")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _sse(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class Gateway:
    """Everything one gateway process holds; routes are its methods."""

    def __init__(self, config: GatewayConfig, pipeline: Pipeline | None = None) -> None:
        self.config = config
        ms = config.mixguard
        self.keys = KeyStore(ms.api_keys, ms.admin_key)
        self.router = Router(config)
        self.redis = RedisHandle(ms.redis_url, ms.redis_prefix)
        self.pipeline = pipeline if pipeline is not None else Pipeline()
        self.started_at = int(time.time())
        self.max_body = ms.max_body_bytes

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.redis.start)
        await self.router.start()
        for g in self.pipeline.guardrails:
            bind = getattr(g, "bind_redis", None)
            if bind is not None:
                bind(self.redis.client)
        if not len(self.keys):
            log.warning("no api_keys configured: every request will be refused with 401")

    async def close(self) -> None:
        await self.router.close()
        await self.redis.close()

    # --- request plumbing --------------------------------------------------------------------
    async def _read_body(self, request: Request) -> bytes:
        cl = request.headers.get("content-length")
        if cl is not None and cl.isdigit() and int(cl) > self.max_body:
            raise errors.PayloadTooLarge(f"Request body is {cl} bytes; the limit is {self.max_body}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise errors.PayloadTooLarge(f"Request body exceeds the limit of {self.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _context(self, request: Request, principal: Principal) -> GuardContext:
        return GuardContext(key_id=principal.key_id, app=principal.app, policy=principal.policy,
                            request_id=request.scope["state"]["request_id"],
                            conversation_id=request.headers.get("x-conversation-id"))

    async def _begin(self, request: Request) -> tuple[Principal, dict[str, Any]]:
        principal = self.keys.authenticate(request.headers.get("authorization"))
        body = validation.parse_json_object(await self._read_body(request))
        return principal, body

    @staticmethod
    def _mark(request: Request, result: RouteResult) -> None:
        state = request.scope["state"]
        state["backend"] = result.backend.id
        if result.attempts:
            state["extra_headers"] = {"x-mixguard-fallback-reason": result.fallback_reason or ""}
            METRICS.fallbacks.labels(state["model"], result.backend.id).inc()

    @staticmethod
    def _count_tokens(model: str, backend: str, usage: dict[str, Any] | None) -> None:
        if not usage:
            return
        METRICS.tokens.labels(model, backend, "in").inc(usage.get("prompt_tokens") or 0)
        METRICS.tokens.labels(model, backend, "out").inc(usage.get("completion_tokens") or 0)
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        if cached:
            METRICS.tokens.labels(model, backend, "cached").inc(cached)

    def _error_event(self, exc: Exception) -> dict[str, Any]:
        if isinstance(exc, errors.GatewayError):
            return exc.body()
        if isinstance(exc, BackendError):
            kind = errors.UpstreamTimeout if exc.timeout else errors.UpstreamError
            return kind(f"Backend failed mid-stream: {exc.reason}").body()
        log.error("stream failed with %s", type(exc).__name__)
        return errors.GatewayError("Internal error while streaming").body()

    # --- chat & text completions ---------------------------------------------------------------
    async def chat_completions(self, request: Request) -> Response:
        return await self._complete(request, "chat")

    async def completions(self, request: Request) -> Response:
        return await self._complete(request, "completions")

    async def _complete(self, request: Request, kind: str) -> Response:
        principal, body = await self._begin(request)
        model = validation.chat(body) if kind == "chat" else validation.completions(body)
        request.scope["state"]["model"] = model
        ctx = self._context(request, principal)
        if self.pipeline:
            await self.pipeline.check_input(ctx, kind, body)
        if body.get("stream"):
            start = await self.router.open_stream(model, kind, body)
            self._mark(request, start.result)
            ctx.backend = start.result.backend.id
            return StreamingResponse(self._sse_body(ctx, kind, model, start), media_type="text/event-stream",
                                     headers=SSE_HEADERS)
        data, result = await self.router.request(model, kind, body)
        self._mark(request, result)
        ctx.backend = result.backend.id
        self.pipeline.apply_to_response(self.pipeline.output_chain(ctx), kind, data)
        self._count_tokens(model, result.backend.id, data.get("usage"))
        return _json(data)

    async def _events(self, ctx: GuardContext, kind: str, start: Any) -> AsyncIterator[dict[str, Any]]:
        async def raw() -> AsyncIterator[dict[str, Any]]:
            yield start.first
            async for ev in start.events:
                yield ev
        events = raw()
        if self.pipeline and self.pipeline.output_chain(ctx) is not None:
            events = self.pipeline.apply_to_stream(lambda: self.pipeline.output_chain(ctx), kind, events)
        try:
            async for ev in events:
                yield ev
        finally:
            await start.events.aclose()

    async def _sse_body(self, ctx: GuardContext, kind: str, model: str, start: Any) -> AsyncIterator[bytes]:
        try:
            async for ev in self._events(ctx, kind, start):
                if ev.get("usage"):
                    self._count_tokens(model, start.result.backend.id, ev["usage"])
                yield _sse(ev)
            yield b"data: [DONE]\n\n"
        except (BackendError, errors.GatewayError) as exc:
            yield _sse(self._error_event(exc))

    # --- Responses API -------------------------------------------------------------------------
    async def responses(self, request: Request) -> Response:
        principal, body = await self._begin(request)
        chat = responses_api.to_chat_body(body)
        model = validation.chat(chat)
        request.scope["state"]["model"] = model
        ctx = self._context(request, principal)
        if self.pipeline:
            await self.pipeline.check_input(ctx, "chat", chat)
        if body.get("stream"):
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}
            start = await self.router.open_stream(model, "chat", chat)
            self._mark(request, start.result)
            ctx.backend = start.result.backend.id
            return StreamingResponse(responses_api.stream_events(self._events(ctx, "chat", start), body, self._error_event),
                                     media_type="text/event-stream", headers=SSE_HEADERS)
        data, result = await self.router.request(model, "chat", chat)
        self._mark(request, result)
        ctx.backend = result.backend.id
        self.pipeline.apply_to_response(self.pipeline.output_chain(ctx), "chat", data)
        self._count_tokens(model, result.backend.id, data.get("usage"))
        return _json(responses_api.from_chat_response(data, body))

    # --- models, health, metrics ---------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        self.keys.authenticate(request.headers.get("authorization"))
        return _json({"object": "list", "data": [
            {"id": name, "object": "model", "created": self.started_at, "owned_by": "mixguard"}
            for name in self.router.groups]})

    async def live(self, _: Request) -> Response:
        return _json({"status": "ok"})

    async def ready(self, _: Request) -> Response:
        checks = await asyncio.gather(self.redis.ping(), *(b.probe() for b in self.router.backends))
        redis_ok, redis_reason = checks[0]
        backends = {b.id: {"ok": ok, "reason": reason} for b, (ok, reason) in zip(self.router.backends, checks[1:])}
        groups_ok = all(any(backends[b.id]["ok"] for b in grp) for grp in self.router.groups.values())
        ready = redis_ok and groups_ok
        return _json({"status": "ready" if ready else "not_ready",
                      "checks": {"redis": {"ok": redis_ok, "reason": redis_reason}, "backends": backends}},
                     200 if ready else 503)

    async def metrics(self, _: Request) -> Response:
        return Response(METRICS.render(), media_type="text/plain; version=0.0.4")


def _gateway_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.GatewayError)
    return Response(exc.json(), status_code=exc.status, media_type="application/json", headers=exc.headers)


def _http_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        err: errors.GatewayError = errors.NotFound("Unknown route")
    elif exc.status_code == 405:
        err = errors.GatewayError("Method not allowed")
        err.status, err.type, err.code = 405, "invalid_request_error", "method_not_allowed"
    else:
        err = errors.GatewayError(str(exc.detail))
        err.status = exc.status_code
    return _gateway_error_handler(_, err)


def _validation_error_handler(_: Request, exc: Exception) -> Response:
    return _gateway_error_handler(_, errors.Unprocessable("Invalid request"))


def create_app(config: GatewayConfig, pipeline: Pipeline | None = None) -> FastAPI:
    gw = Gateway(config, pipeline)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        try:
            yield
        finally:
            await gw.close()

    app = FastAPI(title="mixguard", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gw
    add = app.add_route  # plain Starlette routes: no dependency solving on the hot path
    add("/v1/chat/completions", gw.chat_completions, methods=["POST"])
    add("/v1/completions", gw.completions, methods=["POST"])
    add("/v1/responses", gw.responses, methods=["POST"])
    add("/v1/models", gw.models, methods=["GET"])
    add("/health/live", gw.live, methods=["GET"])
    add("/health/ready", gw.ready, methods=["GET"])
    add("/metrics", gw.metrics, methods=["GET"])
    app.add_exception_handler(errors.GatewayError, _gateway_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_middleware(EdgeMiddleware)
    return app
