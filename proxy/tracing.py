"""OpenTelemetry spans per request, exported over OTLP/HTTP when configured.

One trace per request: a root span `mixguard <endpoint>` with a child per stage (authenticate,
admit, parse, guard_input, route, backend_call under route, guard_output, record), each carrying
the request id. A client's W3C `traceparent` makes the root its child.

Off unless `mixguard.tracing.endpoint` or OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set: then
`instrument()` returns at once and the gateway's methods are untouched, so tracing-off costs
nothing per request. On, it wraps the gateway's stage methods on the instance (app.py keeps no
tracing code in its stages).

Attributes hold identifiers, configured names and counts only: request id, app, key id, policy,
model group, backend id, status, outcome, rule ids with their actions, PII entity counts. Never a
prompt, an answer, an error message (upstream messages may quote a prompt) or a PII value.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from .settings import TracingSettings

if TYPE_CHECKING:
    from .app import Gateway
    from .exchange import Exchange

log = logging.getLogger("mixguard.tracing")

#: The request id of the route stage running in this task: its backend calls carry it too.
_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("mixguard_trace_request_id", default=None)
_STAGES_EX_FIRST = {"_admit": "admit", "_guard_input": "guard_input", "_guard_output": "guard_output"}


def traces_endpoint(cfg: TracingSettings, env: dict[str, str] | None = None) -> str | None:
    """The OTLP/HTTP traces URL to export to, or None when tracing is off."""
    env = dict(os.environ) if env is None else env
    if cfg.enabled is False or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if cfg.endpoint:
        return cfg.endpoint.rstrip("/") + "/v1/traces"
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    return "http://localhost:4318/v1/traces" if cfg.enabled else None


def instrument(gw: Gateway, exporter: Any = None) -> RequestTracer | None:
    """Trace `gw`'s requests when tracing is configured (or an exporter is given, in tests)."""
    cfg = gw.config.mixguard.tracing
    url = traces_endpoint(cfg)
    if url is None and exporter is None:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=url)
    except ImportError:
        raise SystemExit(
            "mixguard: tracing is configured (mixguard.tracing or OTEL_EXPORTER_OTLP_*ENDPOINT) but the OpenTelemetry "
            "SDK is not installed: pip install 'mixguard[tracing]', or set mixguard.tracing.enabled: false"
        ) from None
    # A provider of the gateway's own, not the global one: litellm or an app embedding mixguard
    # may configure theirs.
    provider = TracerProvider(
        resource=Resource.create({"service.name": cfg.service_name}),
        sampler=ParentBased(TraceIdRatioBased(cfg.sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = RequestTracer(provider)
    tracer.wrap(gw)
    log.info("tracing: spans exported over OTLP to %s", url or type(exporter).__name__)
    return tracer


class RequestTracer:
    """Spans of one gateway's requests; the root span of each lives from authenticate to record."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = provider.get_tracer("mixguard")
        self._trace, self._context = trace, context
        self._propagator = TraceContextTextMapPropagator()
        self._roots: dict[int, Any] = {}  # id(exchange) -> its root span, until the record stage

    # --- spans ---------------------------------------------------------------------------------
    def _root(self, ex: Exchange, request: Any = None) -> Any:
        span = self._roots.get(id(ex))
        if span is None:
            parent = None
            if request is not None and (tp := request.headers.get("traceparent")):
                parent = self._propagator.extract({"traceparent": tp})
            span = self.tracer.start_span(f"mixguard {ex.endpoint}", context=parent, kind=self._trace.SpanKind.SERVER)
            span.set_attribute("mixguard.request_id", ex.request_id)
            span.set_attribute("mixguard.endpoint", ex.endpoint)
            self._roots[id(ex)] = span
        return span

    def _child(self, name: str, ex: Exchange) -> Any:
        span = self.tracer.start_span(name, context=self._trace.set_span_in_context(self._root(ex)))
        span.set_attribute("mixguard.request_id", ex.request_id)
        return span

    def _failed(self, span: Any, exc: BaseException) -> None:
        """The error's type and code, never its message."""
        span.set_attribute("error.type", type(exc).__name__)
        code = getattr(exc, "code", None)
        if isinstance(code, str):
            span.set_attribute("mixguard.error_code", code)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))

    def _describe(self, span: Any, ex: Exchange) -> None:
        """What a stage learned, as names and counts."""
        for key, value in (
            ("mixguard.app", ex.app),
            ("mixguard.key_id", ex.key_id),
            ("mixguard.policy", ex.policy),
            ("mixguard.policy_version", ex.policy_version),
            ("mixguard.model", ex.model),
            ("mixguard.backend", ex.backend),
            ("mixguard.cache", ex.cache),
        ):
            if value:
                span.set_attribute(key, value)
        if ex.attempts:
            span.set_attribute("mixguard.fallback_attempts", len(ex.attempts))
        ctx = ex.ctx
        if ctx is not None:
            if ctx.decisions:
                span.set_attribute("mixguard.decisions", [f"{d.rule_id}:{d.action}" for d in ctx.decisions])
            for entity, n in ctx.pii_counts.items():
                span.set_attribute(f"mixguard.pii.{entity}", int(n))

    # --- wrapping the gateway ----------------------------------------------------------------------
    def wrap(self, gw: Gateway) -> None:
        for method, name in _STAGES_EX_FIRST.items():
            setattr(gw, method, self._stage(getattr(gw, method), name, ex_arg=0))
        gw._parse = self._stage(gw._parse, "parse", ex_arg=1)  # type: ignore[method-assign]
        gw._answer = self._stage(gw._answer, "route", ex_arg=0, current=True)  # type: ignore[method-assign]
        gw._open_stream = self._stage(gw._open_stream, "route", ex_arg=0, current=True)  # type: ignore[method-assign]
        gw._accounted = self._stream_stage(gw._accounted, "guard_output")  # type: ignore[method-assign]
        gw._authenticate = self._authenticate(gw._authenticate)  # type: ignore[method-assign]
        gw.request_done = self._record(gw.request_done)  # type: ignore[method-assign,assignment]
        for backend in gw.router.backends:
            backend.request = self._backend_call(backend.id, backend.request)  # type: ignore[method-assign]
            backend.stream = self._backend_stream(backend.id, backend.stream)  # type: ignore[method-assign]
        close = gw.close

        async def close_and_flush() -> None:
            await close()
            self.provider.shutdown()  # exports what the batch processor holds

        gw.close = close_and_flush  # type: ignore[method-assign]

    def _stage(self, fn: Callable[..., Any], name: str, ex_arg: int, current: bool = False) -> Callable[..., Any]:
        """An async stage; `current`: its span is the parent of the backend calls made inside it."""

        @functools.wraps(fn)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            ex = args[ex_arg]
            span = self._child(name, ex)
            token = self._context.attach(self._trace.set_span_in_context(span)) if current else None
            rid = _REQUEST_ID.set(ex.request_id) if current else None
            try:
                return await fn(*args, **kwargs)
            except BaseException as exc:
                self._failed(span, exc)
                raise
            finally:
                if token is not None:
                    self._context.detach(token)
                if rid is not None:
                    _REQUEST_ID.reset(rid)
                self._describe(span, ex)
                span.end()

        return traced

    def _stream_stage(self, fn: Callable[..., AsyncIterator[Any]], name: str) -> Callable[..., AsyncIterator[Any]]:
        """A stream's output stage: from its first event to its last, output guardrails chunk by chunk."""

        @functools.wraps(fn)
        async def traced(ex: Exchange, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            span = self._child(name, ex)
            span.set_attribute("mixguard.stream", True)
            try:
                async for ev in fn(ex, *args, **kwargs):
                    yield ev
            except BaseException as exc:
                self._failed(span, exc)
                raise
            finally:
                self._describe(span, ex)
                span.end()

        return traced

    def _authenticate(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def traced(request: Any, ex: Exchange, *args: Any, **kwargs: Any) -> Any:
            self._root(ex, request)
            span = self._child("authenticate", ex)
            try:
                return fn(request, ex, *args, **kwargs)
            except BaseException as exc:
                self._failed(span, exc)
                raise
            finally:
                self._describe(span, ex)
                span.end()

        return traced

    def _record(self, fn: Callable[[Exchange, int], None]) -> Callable[[Exchange, int], None]:
        """The record stage (the audit record queued), then the root span ends with the outcome."""

        @functools.wraps(fn)
        def traced(ex: Exchange, status: int) -> None:
            root = self._roots.pop(id(ex), None)
            if root is None:  # not an API request, or it never reached authenticate
                return fn(ex, status)
            span = self.tracer.start_span("record", context=self._trace.set_span_in_context(root))
            span.set_attribute("mixguard.request_id", ex.request_id)
            try:
                fn(ex, status)
            finally:
                span.end()
                self._describe(root, ex)
                root.set_attribute("http.response.status_code", 499 if ex.client_closed else status)
                if ex.error_code:
                    root.set_attribute("mixguard.error_code", ex.error_code)
                if status >= 500:
                    root.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
                root.end()

        return traced

    def _backend_span(self, backend_id: str) -> Any:
        span = self.tracer.start_span("backend_call", kind=self._trace.SpanKind.CLIENT)
        span.set_attribute("mixguard.backend", backend_id)
        if (rid := _REQUEST_ID.get()) is not None:
            span.set_attribute("mixguard.request_id", rid)
        return span

    def _backend_call(self, backend_id: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def traced(kind: str, *args: Any, **kwargs: Any) -> Any:
            span = self._backend_span(backend_id)
            span.set_attribute("mixguard.kind", kind)
            try:
                return await fn(kind, *args, **kwargs)
            except BaseException as exc:
                self._failed(span, exc)
                raise
            finally:
                span.end()

        return traced

    def _backend_stream(self, backend_id: str, fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def traced(kind: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            span = self._backend_span(backend_id)
            span.set_attribute("mixguard.kind", kind)
            span.set_attribute("mixguard.stream", True)
            try:
                async for ev in fn(kind, *args, **kwargs):
                    yield ev
            except BaseException as exc:
                if not isinstance(exc, GeneratorExit):
                    self._failed(span, exc)
                raise
            finally:
                span.end()

        return traced
