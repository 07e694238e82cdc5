"""App factory and the OpenAI-compatible routes.

One request walks named stages, carrying one typed `Exchange` (proxy/exchange.py): the edge
middleware (request id, headers, metrics) → authenticate → admit (policy, rate limit, audit store)
→ parse (request shapes, a configured model) → guard input → route (response cache, SGLang first,
hosted fallbacks) → guard output → account (usage, token metrics, tpm) → record (audit, after
the response was sent).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response, StreamingResponse

from guardrails.base import ALLOW, Decision, GuardContext
from guardrails.pipeline import Pipeline
from guardrails.request_shapes import Endpoint, conversation_text, text_slots
from guardrails.schema_contract import ContractGuardrail
from policies.loader import LoadedPolicy, PolicyError
from policies.store import PolicyStore

from . import errors, responses_api, validation
from .audit.chain import resolve_key
from .audit.writer import AuditWriter
from .auth import KeyStore, Principal
from .backends import BackendError
from .edge import EdgeMiddleware
from .exchange import Exchange
from .metrics import METRICS
from .rate_limit import RateLimiter
from .redis_store import RedisHandle
from .refusals import chunks_of, refusal_completion, refusal_stream
from .residency import route_gate
from .response_cache import CacheControl, CachedBackend, ResponseCache, StreamRecorder, cacheable, replay, replayable
from .routing import Router, RouteResult, StreamStart
from .settings import GatewayConfig

log = logging.getLogger("mixguard")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _sse(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class Gateway:
    """Everything one gateway process holds; routes are its methods."""

    def __init__(
        self, config: GatewayConfig, pipeline: Pipeline | None = None, policies: PolicyStore | None = None
    ) -> None:
        self.config = config
        ms = config.mixguard
        self.keys = KeyStore(ms.api_keys, ms.admin_key)
        self.router = Router(config)
        self.redis = RedisHandle(ms.redis_url, ms.redis_prefix, config._source)
        self.pipeline = pipeline if pipeline is not None else Pipeline()
        self.policies = (
            policies if policies is not None else PolicyStore(ms.policies_path(), required=ms.required_policies())
        )
        self.hosted = {d.backend_id for d in config.model_list if d.hosted}
        self.started_at = int(time.time())
        self.max_body = ms.max_body_bytes
        self.audit: AuditWriter | None = None
        self.audit_key = os.urandom(32)
        if ms.audit.enabled:
            self.audit_key, source = resolve_key(ms.audit.key_env, ms.audit.key_file)
            log.info("audit records signed with the key from %s", source)
            self.audit = AuditWriter(
                self.audit_key, ms.redis_prefix, os.path.expanduser(ms.audit.spool_path), ms.audit.retention_records
            )
        self.admin_session = os.urandom(32)
        self.limiter = RateLimiter(ms.redis_prefix, self.keys.limits) if self.keys.limits else None
        rc = ms.response_cache
        # Cache keys are HMACs under a key derived from the audit key, so replicas that share it
        # (and Redis) share the cache, and a key tells nothing about the prompt.
        self.cache = (
            ResponseCache(
                ms.redis_prefix,
                rc.ttl_s,
                rc.max_bytes,
                hmac.new(self.audit_key, b"mixguard response cache", "sha256").digest(),
            )
            if rc.enabled
            else None
        )
        # The schema contract is a guardrail (its input stage asks for constrained output); the edge
        # keeps a handle on it to validate answers, since a violation may mean a re-ask.
        self.contracts = ContractGuardrail(self.policies)
        self.pipeline.guardrails.append(self.contracts)
        self._tasks: list[asyncio.Task] = []
        missing = sorted({k.policy for k in ms.api_keys} - set(self.policies.policies))
        if missing:  # a key must never fall back to another policy silently
            raise PolicyError(f"API keys name policies that do not exist: {', '.join(missing)}")

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.redis.start)
        if self.redis.embedded:
            self._tasks.append(asyncio.get_running_loop().create_task(self.redis.supervise()))
        self._tasks.append(asyncio.get_running_loop().create_task(self.redis.watch()))
        await self.router.start()
        self.pipeline.bind_redis(self.redis.client)
        if self.audit is not None:
            self.audit.start(self.redis.client)
        if self.cache is not None:
            self.cache.bind_redis(self.redis.client)
        if self.limiter is not None:
            self.limiter.bind_redis(self.redis.client)
        if self.config.mixguard.policy_reload_interval_s > 0:
            self._tasks.append(asyncio.get_running_loop().create_task(self._watch_policies()))
        if not len(self.keys):
            log.warning("no api_keys configured: every request will be refused with 401")

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.audit is not None:
            await self.audit.close()
        self.pipeline.close()
        await self.router.close()
        await self.redis.close()

    async def _watch_policies(self) -> None:
        """Reload policies when a file in policies_dir changes (stat polling: no extra dependency)."""
        interval = self.config.mixguard.policy_reload_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                if self.policies.changed():
                    await asyncio.to_thread(self.policies.reload)
            except Exception as exc:  # the watcher must outlive any one bad reload
                log.error("policy reload failed: %s", type(exc).__name__)

    # --- record: the last stage, after the response was sent -------------------------------------
    def request_done(self, ex: Exchange, status: int) -> None:
        """Called by the edge middleware when a response has been sent: queue its audit record."""
        if not ex.audited or self.audit is None:
            return
        ex.t_end = time.perf_counter()
        ex.status = 499 if ex.client_closed else status  # nginx's "client closed request"
        if ex.client_closed:
            ex.error_code = ex.error_code or "client_closed"
        self.audit.submit(ex)

    # --- authenticate, admit, parse ------------------------------------------------------------
    @staticmethod
    def _exchange(request: Request, endpoint: str) -> Exchange:
        ex: Exchange = request.scope["state"]["exchange"]
        ex.endpoint, ex.audited = endpoint, True
        return ex

    def _authenticate(self, request: Request, ex: Exchange) -> Principal:
        principal = ex.principal = self.keys.authenticate(request.headers.get("authorization"))
        ex.key_id, ex.app = principal.key_id, principal.app
        return principal

    async def _admit(self, ex: Exchange, principal: Principal) -> LoadedPolicy:
        """The caller's policy, its rate limit and the audit store's state, before the body is read."""
        lp = ex.policy_loaded = self.policies.get(principal.policy)
        ex.policy, ex.policy_version = lp.policy.name, lp.version
        ex.content, ex.truncate_chars = lp.policy.audit.content, lp.policy.audit.truncate_chars
        ex.headers["x-mixguard-policy"] = f"{lp.policy.name}@{lp.version}"
        if self.limiter is not None:  # before the body is read or any guardrail runs
            ex.headers.update(await self.limiter.admit(principal.key_id))
        if self.audit is not None and self.audit.degraded and lp.policy.audit.on_unavailable == "fail_closed":
            raise errors.AuditUnavailable(
                f"Audit store unavailable and policy '{lp.policy.name}' fails closed: request refused"
            )
        return lp

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

    async def _parse(self, request: Request, ex: Exchange, endpoint: Endpoint, lp: LoadedPolicy) -> None:
        """The body checked against its endpoint's shape (Responses translated to chat), a configured
        model group, and the guardrails' context."""
        data = await self._read_body(request)
        raw = validation.parse_json_object(data)
        ex.cache_control = CacheControl.pop_from(raw)  # LiteLLM's per-request cache controls; never forwarded
        parsed = validation.parse(endpoint, raw, lp.policy.request.unknown_fields)
        if endpoint == "responses":
            ex.responses_request, ex.body, ex.kind = parsed.body, responses_api.to_chat_body(parsed.body), "chat"
        else:
            ex.body, ex.kind = parsed.body, endpoint
        ex.model = self._known_model(ex.body["model"])
        self._within_limits(ex, lp, parsed.scanned, len(data))
        ex.stream = bool(parsed.body.get("stream"))
        ex.ctx = GuardContext(
            key_id=ex.key_id or "",
            app=ex.app or "",
            policy=lp.policy.name,
            request_id=ex.request_id,
            conversation_id=request.headers.get("x-conversation-id"),
            scanned_fields=tuple(parsed.scanned),
        )

    @staticmethod
    def _within_limits(ex: Exchange, lp: LoadedPolicy, scanned: list[str], body_bytes: int) -> None:
        """The policy's bounds on one request's size: a tenant cannot tie up the analysis workers with
        a 10,000-message body (413 before any guardrail runs)."""
        limits = lp.policy.request
        messages = len(ex.body.get("messages") or [])
        if messages > limits.max_messages:
            raise errors.PayloadTooLarge(
                f"The request holds {messages} messages; policy '{lp.policy.name}' allows {limits.max_messages}",
                param="messages",
            )
        if body_bytes <= limits.max_text_chars:
            return  # every character of text takes at least one byte of JSON: no need to walk the body
        chars = sum(len(s.text) for s in text_slots(ex.kind, ex.body, scanned))  # type: ignore[arg-type]
        if chars > limits.max_text_chars:
            raise errors.PayloadTooLarge(
                f"The request holds {chars} characters of text; policy '{lp.policy.name}' allows "
                f"{limits.max_text_chars}"
            )

    def _known_model(self, model: str) -> str:
        """The configured model group a request names; 404 before its name reaches a metric or the
        audit record (no client string ever becomes a label)."""
        if model not in self.router.groups:
            raise errors.NotFound(
                "The model named in 'model' does not exist or is not served by this gateway",
                param="model",
                code="model_not_found",
            )
        return model

    # --- guard input -----------------------------------------------------------------------------
    async def _guard_input(self, ex: Exchange, lp: LoadedPolicy) -> dict[str, Any] | None:
        """Every guardrail on the parsed body (masking it in place). A refusal the policy answers as a
        completion comes back as that completion; other verdicts are HTTP errors. Then the policy's
        schema contract and residency gate are set for the route stage."""
        ctx = ex.guard
        t = time.perf_counter()
        try:
            verdict = await self.pipeline.check_input(ctx, ex.kind, ex.body) if self.pipeline else ALLOW
        finally:
            ex.guard_ms = (time.perf_counter() - t) * 1000
        if verdict.action == "refuse" and verdict.as_completion:
            ex.refused = True
            return refusal_completion(ex.kind, ex.model or "", verdict.refusal or "", ex.request_id)
        if not verdict.allowed:
            raise errors.from_verdict(verdict)
        if ctx.pii_checked:  # only masked text is ever recorded
            ex.prompt = conversation_text(ex.kind, ex.body)  # type: ignore[arg-type]
            ex.redact_answer = self.pipeline.audit_redactor(ctx)
        ex.contract = self.contracts.checker(ctx, ex.kind)
        ex.gate = route_gate(self.pipeline, ctx, self.hosted)
        if self.cache is not None:
            ex.cache_key = self.cache.key(ctx.key_id, ex.policy_version or "", ex.kind, ex.body)
        return None

    # --- route ---------------------------------------------------------------------------------------
    def _routed(self, ex: Exchange, result: RouteResult) -> None:
        ex.backend = ex.guard.backend = result.backend.id
        if result.attempts:
            ex.fallback_reason = result.fallback_reason
            ex.attempts = [{"backend": a.backend, "reason": a.reason} for a in result.attempts]
            ex.headers["x-mixguard-fallback-reason"] = result.fallback_reason or ""
            METRICS.fallbacks.labels(ex.model or "", result.backend.id).inc()

    async def _answer(self, ex: Exchange, first: bool) -> tuple[dict[str, Any], bytes | None]:
        """The backend's answer to the masked body, from the response cache when it holds one (first
        attempt only), and its serialized form when it may be cached (taken before the output
        guardrails restore the caller's values into it)."""
        hit = await self._lookup(ex) if first else None
        if hit is not None:
            return hit, None
        data, result = await self.router.request(
            ex.model or "", ex.kind, ex.body, ex.gate, conversation_id=ex.guard.conversation_id
        )
        self._routed(ex, result)
        store = first and ex.cache_key is not None and ex.cache_control.store and cacheable(data)
        return data, orjson.dumps(data) if store else None

    async def _open_stream(self, ex: Exchange) -> StreamStart:
        """A replay of the cached answer, or the backend's stream (which always reports usage: tpm
        limits, token metrics and the audit record need it)."""
        data = await self._lookup(ex, stream=True)
        if data is not None:
            events = replay(data, include_usage=_wants_usage(ex.body))
            return StreamStart(RouteResult(CachedBackend(ex.backend or "")), await events.__anext__(), events)
        ex.body["stream"] = True
        ex.body["stream_options"] = {**(ex.body.get("stream_options") or {}), "include_usage": True}
        start = await self.router.open_stream(
            ex.model or "", ex.kind, ex.body, ex.gate, conversation_id=ex.guard.conversation_id
        )
        self._routed(ex, start.result)
        return start

    async def _lookup(self, ex: Exchange, stream: bool = False) -> dict[str, Any] | None:
        """The cached answer for this request, if the cache is on and holds one (for a stream: one
        it can replay); says hit or miss in a header and the audit record."""
        if self.cache is None or ex.cache_key is None:
            return None
        hit = await self.cache.get(ex.cache_key) if ex.cache_control.lookup else None
        if hit is not None and stream and not replayable(hit[0]):
            hit = None
        ex.cache = "hit" if hit else "miss"
        ex.headers["x-mixguard-cache"] = ex.cache
        if hit is None:
            return None
        data, backend = hit
        ex.backend = ex.guard.backend = backend
        return data

    async def _store(self, ex: Exchange, encoded: bytes | None) -> None:
        if (
            self.cache is not None
            and ex.cache_key is not None
            and encoded is not None
            and await self.cache.put(ex.cache_key, encoded, ex.backend or "", ex.cache_control.ttl_s)
        ):
            ex.cache = "stored"

    # --- route and guard output, whole answers ------------------------------------------------------
    async def _request_with_contract(self, ex: Exchange) -> dict[str, Any]:
        """One backend call (or a cached answer) with the output guardrails on its answer, or (with a
        schema contract) up to 1 + max_retries calls with re-asks."""
        ctx, kind, checker = ex.guard, ex.kind, ex.contract
        tries = 1 + (checker.contract.max_retries if checker is not None and checker.contract.mode == "enforce" else 0)
        for attempt in range(1, tries + 1):
            data, encoded = await self._answer(ex, attempt == 1)
            ex.usage = data.get("usage")
            raw = _answer_texts(kind, data)
            ex.answer_parts = raw[:1]
            await self._guard_output(ex, data)
            shown = _answer_texts(kind, data)[:1]  # what the caller gets (restored)
            if checker is None:
                if kind == "chat" and self.pipeline:
                    self.pipeline.answered(ctx, shown)
                await self._store(ex, encoded)
                return data
            violations = checker.violations(shown[0] if shown else "")
            name = f"schema.{checker.contract.name}"
            ex.schema = {"valid": not violations, "attempts": attempt, "violations": [str(v) for v in violations]}
            if not violations:
                await self._store(ex, encoded)
                return data
            if checker.contract.mode == "monitor":
                ctx.decisions.append(Decision("schema", name, "monitor", 1.0, "monitor", {}))
                return data
            if attempt == tries:
                ctx.decisions.append(Decision("schema", name, "block", 1.0, "enforce", {}))
                raise errors.SchemaViolation(
                    f"The answer does not match the contract '{checker.contract.name}' after {tries} attempt(s): "
                    + "; ".join(map(str, violations)),
                    param="response_format",
                )
            ctx.decisions.append(Decision("schema", name, "reask", 1.0, "enforce", {}))
            ex.body["messages"] = [
                *ex.body["messages"],
                {"role": "assistant", "content": raw[0] if raw else ""},
                {"role": "user", "content": checker.reask(violations)},
            ]
        raise AssertionError("unreachable")

    async def _guard_output(self, ex: Exchange, data: dict[str, Any]) -> None:
        """Output filters (restore, redact invented PII) and output rules on a whole answer."""
        ctx, kind = ex.guard, ex.kind
        await self.pipeline.apply_to_response(self.pipeline.output_chain(ctx), kind, data)
        for choice in data.get("choices") or []:
            msg = choice.get("message") if kind == "chat" else None
            text = (msg or {}).get("content") if kind == "chat" else choice.get("text")
            if not isinstance(text, str) or not text:
                continue
            verdict = await self.pipeline.check_answer(ctx, text)
            if (refusal := verdict.refusal if not verdict.allowed else None) is not None:
                if kind == "chat":
                    msg["content"] = refusal
                    msg.pop("tool_calls", None)
                else:
                    choice["text"] = refusal
                choice["finish_reason"] = "content_filter"

    # --- account ---------------------------------------------------------------------------------------
    def _account(self, ex: Exchange, usage: dict[str, Any] | None) -> None:
        """An answer's tokens: in the audit record, the token metrics and (in the background) the key's
        tokens-per-minute limit. A replayed answer cost the backend nothing and is not charged."""
        ex.usage = usage or ex.usage
        if not usage or ex.cache == "hit":
            return
        model, backend = ex.model or "", ex.backend or ""
        METRICS.tokens.labels(model, backend, "in").inc(usage.get("prompt_tokens") or 0)
        METRICS.tokens.labels(model, backend, "out").inc(usage.get("completion_tokens") or 0)
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        if cached:
            METRICS.tokens.labels(model, backend, "cached").inc(cached)
        if self.limiter is not None and ex.key_id is not None:
            self.limiter.charge(ex.key_id, usage)

    def _error_event(self, exc: Exception) -> dict[str, Any]:
        if isinstance(exc, errors.GatewayError):
            return exc.body()
        if isinstance(exc, BackendError):
            kind = errors.UpstreamTimeout if exc.timeout else errors.UpstreamError
            return kind(f"Backend failed mid-stream: {exc.reason}").body()
        log.error("stream failed with %s", type(exc).__name__)
        return errors.GatewayError("Internal error while streaming").body()

    # --- the endpoints: the stages in order -----------------------------------------------------------
    async def chat_completions(self, request: Request) -> Response:
        return await self._complete(request, "chat")

    async def completions(self, request: Request) -> Response:
        return await self._complete(request, "completions")

    async def _complete(self, request: Request, endpoint: Literal["chat", "completions"]) -> Response:
        ex = self._exchange(request, endpoint)
        lp = await self._admit(ex, self._authenticate(request, ex))
        await self._parse(request, ex, endpoint, lp)
        refusal = await self._guard_input(ex, lp)
        if refusal is not None:
            if ex.stream:
                return StreamingResponse(refusal_stream(refusal), media_type="text/event-stream", headers=SSE_HEADERS)
            return _json(refusal)
        if ex.stream:
            show_usage = _wants_usage(ex.body)  # a caller that did not ask for the usage chunk does not see it
            start = await self._open_stream(ex)
            recorder = (
                StreamRecorder(ex.kind)
                if ex.cache_key is not None and ex.cache == "miss" and ex.cache_control.store
                else None
            )
            return StreamingResponse(
                self._sse_body(ex, start, recorder, show_usage), media_type="text/event-stream", headers=SSE_HEADERS
            )
        data = await self._request_with_contract(ex)
        self._account(ex, data.get("usage"))
        return _json(data)

    async def responses(self, request: Request) -> Response:
        ex = self._exchange(request, "responses")
        lp = await self._admit(ex, self._authenticate(request, ex))
        await self._parse(request, ex, "responses", lp)
        body = ex.responses_request or {}
        refusal = await self._guard_input(ex, lp)
        if refusal is not None:
            if ex.stream:
                return StreamingResponse(
                    responses_api.stream_events(chunks_of(refusal), body, self._error_event),
                    media_type="text/event-stream",
                    headers=SSE_HEADERS,
                )
            return _json(responses_api.from_chat_response(refusal, body))
        if ex.stream:
            start = await self._open_stream(ex)
            return StreamingResponse(
                responses_api.stream_events(self._accounted(ex, start), body, self._stream_error(ex)),
                media_type="text/event-stream",
                headers=SSE_HEADERS,
            )
        data = await self._request_with_contract(ex)
        self._account(ex, data.get("usage"))
        return _json(responses_api.from_chat_response(data, body))

    # --- streams: guard output and account, chunk by chunk ---------------------------------------------
    async def _events(
        self, ex: Exchange, start: StreamStart, recorder: StreamRecorder | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        ctx, kind = ex.guard, ex.kind

        async def raw() -> AsyncIterator[dict[str, Any]]:
            parts = ex.answer_parts
            ev = start.first
            while True:
                for choice in ev.get("choices") or []:  # the model's (placeholder) text, for the audit record
                    if (piece := _first_piece(kind, choice)) is not None:
                        parts.append(piece)
                if recorder is not None:  # the masked answer, for the response cache
                    recorder.see(ev)
                yield ev
                try:
                    ev = await start.events.__anext__()
                except StopAsyncIteration:
                    return

        events = raw()
        if self.pipeline and self.pipeline.output_chain(ctx) is not None:
            events = self.pipeline.apply_to_stream(lambda: self.pipeline.output_chain(ctx), kind, events)
        try:
            async for ev in events:
                yield ev
        finally:
            await start.events.aclose()

    async def _accounted(
        self, ex: Exchange, start: StreamStart, recorder: StreamRecorder | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """A stream's events (caller's view), accounted as every stream is, whatever its endpoint:
        time to first token and usage in the audit record, token metrics and the tokens-per-minute
        charge, end-of-stream checks (schema contract, output topic rules), the next turn's prewarm
        and the response cache."""
        ctx, kind = ex.guard, ex.kind
        shown: list[str] = []  # what the caller saw: for end-of-stream checks and the next turn
        end_checks = ex.contract is not None or self.pipeline.checks_answers(ctx)
        keep = kind == "chat" and bool(self.pipeline)
        try:
            async for ev in self._events(ex, start, recorder):
                if keep or end_checks:
                    for choice in ev.get("choices") or []:
                        if (piece := _first_piece(kind, choice)) is not None:
                            shown.append(piece)
                if ex.ttft_ms is None:
                    ex.ttft_ms = (time.perf_counter() - ex.t0) * 1000
                if ev.get("usage"):
                    self._account(ex, ev["usage"])
                if end_checks:
                    await self._stream_end_checks(ex, ev, shown)
                yield ev
        except (GeneratorExit, asyncio.CancelledError):  # the client went away mid-stream
            ex.client_closed = True
            raise
        if keep:
            self.pipeline.answered(ctx, ["".join(shown)])
        if (
            recorder is not None
            and (ex.schema is None or ex.schema["valid"])
            and (whole := recorder.completion("".join(ex.answer_parts))) is not None
        ):
            await self._store(ex, orjson.dumps(whole))

    async def _sse_body(
        self, ex: Exchange, start: StreamStart, recorder: StreamRecorder | None, show_usage: bool
    ) -> AsyncIterator[bytes]:
        try:
            async for ev in self._accounted(ex, start, recorder):
                if ev.get("usage") and not show_usage:
                    if not ev.get("choices"):
                        continue  # the usage-only last chunk
                    ev = {k: v for k, v in ev.items() if k != "usage"}
                yield _sse(ev)
            yield b"data: [DONE]\n\n"
        except (BackendError, errors.GatewayError) as exc:
            body = self._error_event(exc)
            ex.error_code = body["error"].get("code")
            yield _sse(body)

    def _stream_error(self, ex: Exchange) -> Callable[[Exception], dict[str, Any]]:
        """Maps a failure inside a Responses stream to its error payload, and notes it for the audit."""

        def on_error(exc: Exception) -> dict[str, Any]:
            body = self._error_event(exc)
            ex.error_code = body["error"].get("code")
            return body

        return on_error

    async def _stream_end_checks(self, ex: Exchange, ev: dict[str, Any], shown: list[str]) -> None:
        """Streams cannot be taken back: rules on the whole answer are reported in the final chunk."""
        ctx, checker = ex.guard, ex.contract
        for choice in ev.get("choices") or []:
            if choice.get("index", 0) != 0 or not choice.get("finish_reason"):
                continue
            text = "".join(shown)
            note: dict[str, Any] = {}
            if checker is not None:
                violations = checker.violations(text)
                note["schema"] = {
                    "name": checker.contract.name,
                    "valid": not violations,
                    "violations": [str(v) for v in violations],
                }
                ex.schema = {"valid": not violations, "attempts": 1, "violations": note["schema"]["violations"]}
                if violations:
                    mode = checker.contract.mode
                    action = "block" if mode == "enforce" else "monitor"
                    ctx.decisions.append(Decision("schema", f"schema.{checker.contract.name}", action, 1.0, mode, {}))
            if not (await self.pipeline.check_answer(ctx, text)).allowed:
                choice["finish_reason"] = "content_filter"
                note["topic"] = "refused"
            if note:
                ev["mixguard"] = note

    # --- admin ---------------------------------------------------------------------------------
    async def admin_policies(self, request: Request) -> Response:
        self.keys.authenticate_admin(request.headers.get("authorization"))
        return _json(self.policies.describe())

    async def admin_policies_reload(self, request: Request) -> Response:
        self.keys.authenticate_admin(request.headers.get("authorization"))
        report = await asyncio.to_thread(self.policies.reload)
        out = {
            "ok": report.ok,
            "loaded": report.loaded,
            "unchanged": report.unchanged,
            "removed": report.removed,
            "errors": report.errors,
            "active": {n: lp.version for n, lp in sorted(self.policies.policies.items())},
        }
        return _json(out, 200 if report.ok else 422)

    # --- models, health, metrics ---------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        self.keys.authenticate(request.headers.get("authorization"))
        return _json(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": self.started_at, "owned_by": "mixguard"}
                    for name in self.router.groups
                ],
            }
        )

    async def live(self, _: Request) -> Response:
        return _json({"status": "ok"})

    async def ready(self, _: Request) -> Response:
        checks = await asyncio.gather(self.redis.ping(), *(self.router.readiness(b) for b in self.router.backends))
        redis_ok, redis_reason = checks[0]
        backends = {b.id: {"ok": ok, "reason": reason} for b, (ok, reason) in zip(self.router.backends, checks[1:])}
        own = {name: any(backends[b.id]["ok"] for b in grp) for name, grp in self.router.groups.items()}
        # A group whose deployments are all down still serves through its fallbacks (as requests do): an
        # orchestrator must not take every replica out of service while the hosted fallback answers.
        groups: dict[str, dict[str, Any]] = {}
        for name in self.router.groups:
            via = next((fb for fb in self.router.fallbacks.get(name, []) if own.get(fb)), None)
            groups[name] = {"ok": own[name] or via is not None, **({"via_fallback": via} if not own[name] else {})}
        ready = redis_ok and all(g["ok"] for g in groups.values())
        return _json(
            {
                "status": "ready" if ready else "not_ready",
                "checks": {"redis": {"ok": redis_ok, "reason": redis_reason}, "backends": backends, "groups": groups},
            },
            200 if ready else 503,
        )

    async def metrics(self, _: Request) -> Response:
        return Response(METRICS.render(), media_type="text/plain; version=0.0.4")


def _wants_usage(body: dict[str, Any]) -> bool:
    """Whether the caller asked for a stream's usage chunk (`stream_options.include_usage`)."""
    return bool((body.get("stream_options") or {}).get("include_usage"))


def _first_piece(kind: str, choice: dict[str, Any]) -> str | None:
    """The text a streamed chunk adds to choice 0 (chat delta content or completion text)."""
    if choice.get("index", 0) != 0:
        return None
    piece = (choice.get("delta") or {}).get("content") if kind == "chat" else choice.get("text")
    return piece if isinstance(piece, str) else None


def _answer_texts(kind: str, data: dict[str, Any]) -> list[str]:
    out = []
    for choice in data.get("choices") or []:
        t = (choice.get("message") or {}).get("content") if kind == "chat" else choice.get("text")
        out.append(t if isinstance(t, str) else "")
    return out


def _gateway_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.GatewayError)
    ex = request.scope.get("state", {}).get("exchange")
    if ex is not None:
        ex.error_code = ex.error_code or exc.code
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


def create_app(config: GatewayConfig, pipeline: Pipeline | None = None, policies: PolicyStore | None = None) -> FastAPI:
    gw = Gateway(config, pipeline, policies)
    from .tracing import instrument

    instrument(gw)  # OpenTelemetry spans per stage when configured; untouched (no cost) otherwise

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
    add("/admin/policies", gw.admin_policies, methods=["GET"])
    add("/admin/policies/reload", gw.admin_policies_reload, methods=["POST"])
    from .audit.web import AuditPages

    pages = AuditPages(gw)
    add("/admin/login", pages.login, methods=["GET", "POST"])
    add("/admin/audit", pages.index, methods=["GET"])
    add("/admin/audit/export", pages.export, methods=["GET"])
    add("/admin/audit/{record_id}", pages.detail, methods=["GET"])
    app.add_exception_handler(errors.GatewayError, _gateway_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_middleware(EdgeMiddleware, on_done=gw.request_done)
    return app
