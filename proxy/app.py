"""App factory and the OpenAI-compatible routes.

One request walks: edge middleware (request id, metrics) → auth → body checks → guardrails (input)
→ router (SGLang first, hosted fallbacks) → guardrails (output) → response.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response, StreamingResponse

from guardrails.base import ALLOW, Decision, GuardContext
from guardrails.pipeline import Pipeline
from guardrails.request_shapes import conversation_text
from guardrails.schema_contract import ContractChecker
from policies.loader import LoadedPolicy
from policies.store import PolicyStore

from . import errors, responses_api, validation
from .audit.chain import resolve_key
from .audit.record import AuditDraft
from .audit.writer import AuditWriter
from .auth import KeyStore, Principal
from .backends import BackendError
from .edge import EdgeMiddleware
from .metrics import METRICS
from .rate_limit import RateLimiter
from .redis_store import RedisHandle
from .refusals import chunks_of, refusal_completion, refusal_stream
from .residency import residency_gate
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
        self.redis = RedisHandle(ms.redis_url, ms.redis_prefix)
        self.pipeline = pipeline if pipeline is not None else Pipeline()
        self.policies = policies if policies is not None else PolicyStore(ms.policies_dir)
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
        self._contracts: dict[tuple[str, str], ContractChecker] = {}
        self._tasks: list[asyncio.Task] = []
        for k in ms.api_keys:
            if k.policy not in self.policies.policies:
                log.warning(
                    "api key %s names policy '%s', which does not exist: 'default' applies", k.id or k.app, k.policy
                )

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.redis.start)
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

    def request_done(self, state: dict[str, Any], status: int) -> None:
        """Called by the edge middleware when a response has been sent: queue its audit record."""
        draft = state.get("audit")
        if draft is None or self.audit is None:
            return
        draft.t_end = time.perf_counter()
        draft.status = status
        draft.error_code = draft.error_code or state.get("error_code")
        self.audit.submit(draft)

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

    def _context(
        self, request: Request, principal: Principal, lp: LoadedPolicy, scanned: list[str] | None = None
    ) -> GuardContext:
        return GuardContext(
            key_id=principal.key_id,
            app=principal.app,
            policy=lp.policy.name,
            request_id=request.scope["state"]["request_id"],
            conversation_id=request.headers.get("x-conversation-id"),
            scanned_fields=tuple(scanned or ()),
        )

    def _known_model(self, request: Request, model: str, draft: AuditDraft) -> str:
        """The configured model group a request names; 404 before its name reaches a metric or the
        audit record (no client string ever becomes a label)."""
        if model not in self.router.groups:
            raise errors.NotFound(
                "The model named in 'model' does not exist or is not served by this gateway",
                param="model",
                code="model_not_found",
            )
        request.scope["state"]["model"] = draft.model = model
        return model

    @staticmethod
    def _draft(request: Request, endpoint: str) -> AuditDraft:
        state = request.scope["state"]
        d = state["audit"] = AuditDraft(state["request_id"], endpoint)
        d.client_request_id_sha256 = state.get("client_request_id_sha256")
        return d

    async def _begin(self, request: Request, draft: AuditDraft) -> tuple[Principal, dict[str, Any], LoadedPolicy]:
        principal = self.keys.authenticate(request.headers.get("authorization"))
        lp = self.policies.get(principal.policy)
        draft.key_id, draft.app = principal.key_id, principal.app
        draft.policy, draft.policy_version = lp.policy.name, lp.version
        draft.content, draft.truncate_chars = lp.policy.audit.content, lp.policy.audit.truncate_chars
        request.scope["state"]["extra_headers"] = {"x-mixguard-policy": f"{lp.policy.name}@{lp.version}"}
        if self.limiter is not None:  # before the body is read or any guardrail runs
            request.scope["state"]["extra_headers"].update(await self.limiter.admit(principal.key_id))
        if self.audit is not None and self.audit.degraded and lp.policy.audit.on_unavailable == "fail_closed":
            raise errors.AuditUnavailable(
                f"Audit store unavailable and policy '{lp.policy.name}' fails closed: request refused"
            )
        body = validation.parse_json_object(await self._read_body(request))
        return principal, body, lp

    async def _guard(self, ctx: GuardContext, kind: str, body: dict[str, Any], draft: AuditDraft) -> None:
        draft.ctx = ctx
        t = time.perf_counter()
        try:
            verdict = await self.pipeline.check_input(ctx, kind, body) if self.pipeline else ALLOW
        finally:
            draft.guard_ms = (time.perf_counter() - t) * 1000
        if not verdict.allowed:
            raise errors.from_verdict(verdict)
        if ctx.pii_checked:  # only masked text is ever recorded
            draft.prompt = conversation_text(kind, body)  # type: ignore[arg-type]
            draft.redact_answer = self.pipeline.audit_redactor(ctx)

    @staticmethod
    def _mark(request: Request, result: RouteResult, draft: AuditDraft) -> None:
        state = request.scope["state"]
        state["backend"] = draft.backend = result.backend.id
        if result.attempts:
            draft.fallback_reason = result.fallback_reason
            draft.attempts = [{"backend": a.backend, "reason": a.reason} for a in result.attempts]
            state.setdefault("extra_headers", {})["x-mixguard-fallback-reason"] = result.fallback_reason or ""
            METRICS.fallbacks.labels(state["model"], result.backend.id).inc()

    def _contract(self, lp: LoadedPolicy, kind: str) -> ContractChecker | None:
        if lp.policy.contract is None or kind != "chat":
            return None
        key = (lp.policy.name, lp.version)
        c = self._contracts.get(key)
        if c is None:
            c = self._contracts[key] = ContractChecker(lp.policy.contract)
        return c

    def _gate(self, ctx: GuardContext, lp: LoadedPolicy) -> Any:
        return residency_gate(ctx, lp, self.hosted)

    @staticmethod
    def _count_tokens(model: str, backend: str, usage: dict[str, Any] | None) -> None:
        if not usage:
            return
        METRICS.tokens.labels(model, backend, "in").inc(usage.get("prompt_tokens") or 0)
        METRICS.tokens.labels(model, backend, "out").inc(usage.get("completion_tokens") or 0)
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        if cached:
            METRICS.tokens.labels(model, backend, "cached").inc(cached)

    def _charge(self, ctx: GuardContext, usage: dict[str, Any] | None) -> None:
        """An answer's tokens count against its key's tokens-per-minute limit (in the background)."""
        if self.limiter is not None and ctx.key_id is not None:
            self.limiter.charge(ctx.key_id, usage)

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
        draft = self._draft(request, kind)
        principal, raw, lp = await self._begin(request, draft)
        control = CacheControl.pop_from(raw)  # LiteLLM's per-request cache controls; never forwarded
        parsed = validation.parse(kind, raw, lp.policy.request.unknown_fields)  # type: ignore[arg-type]
        body = parsed.body
        model = self._known_model(request, body["model"], draft)
        draft.stream = bool(body.get("stream"))
        ctx = self._context(request, principal, lp, parsed.scanned)
        try:
            await self._guard(ctx, kind, body, draft)
        except errors.PolicyRefusal as r:
            if not r.as_completion:
                raise
            draft.refused = True
            data = refusal_completion(kind, model, r.refusal, ctx.request_id)
            if draft.stream:
                return StreamingResponse(refusal_stream(data), media_type="text/event-stream", headers=SSE_HEADERS)
            return _json(data)
        checker = self._contract(lp, kind)
        if checker is not None:
            checker.prepare(body)
        gate = self._gate(ctx, lp)
        if draft.stream:
            cache_key = self._cache_key(ctx, draft, kind, body)
            start = await self._replayed_stream(request, ctx, body, draft, cache_key, control)
            # The backend always reports usage (tpm limits, token metrics, the audit record need it);
            # a caller that did not ask for it does not see it.
            show_usage = _wants_usage(body)
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
            if start is None:
                start = await self.router.open_stream(model, kind, body, gate)
                self._mark(request, start.result, draft)
                ctx.backend = start.result.backend.id
            recorder = (
                StreamRecorder(kind) if cache_key is not None and draft.cache == "miss" and control.store else None
            )
            return StreamingResponse(
                self._sse_body(ctx, kind, model, start, draft, checker, recorder, cache_key, control, show_usage),
                media_type="text/event-stream",
                headers=SSE_HEADERS,
            )
        data = await self._request_with_contract(request, ctx, kind, model, body, draft, checker, gate, control)
        if draft.cache != "hit":  # a replayed answer cost the backend no tokens
            self._count_tokens(model, ctx.backend or "", data.get("usage"))
            self._charge(ctx, data.get("usage"))
        return _json(data)

    async def _request_with_contract(
        self,
        request: Request,
        ctx: GuardContext,
        kind: str,
        model: str,
        body: dict[str, Any],
        draft: AuditDraft,
        checker: ContractChecker | None,
        gate: Any,
        control: CacheControl = CacheControl(),
    ) -> dict[str, Any]:
        """One backend call (or a cached answer), or (with a schema contract) up to 1 + max_retries
        calls with re-asks."""
        tries = 1 + (checker.contract.max_retries if checker is not None and checker.contract.mode == "enforce" else 0)
        cache_key = self._cache_key(ctx, draft, kind, body)
        for attempt in range(1, tries + 1):
            data, encoded = await self._answer(
                request, ctx, kind, model, body, draft, gate, cache_key if attempt == 1 else None, control
            )
            draft.usage = data.get("usage")
            raw = _answer_texts(kind, data)
            draft.answer_parts = raw[:1]
            self.pipeline.apply_to_response(self.pipeline.output_chain(ctx), kind, data)
            await self._check_answer(ctx, kind, data)
            shown = _answer_texts(kind, data)[:1]  # what the caller gets (restored)
            if checker is None:
                if kind == "chat" and self.pipeline:
                    self.pipeline.answered(ctx, shown)
                await self._store(cache_key, encoded, draft, control)
                return data
            violations = checker.violations(shown[0] if shown else "")
            name = f"schema.{checker.contract.name}"
            draft.schema = {"valid": not violations, "attempts": attempt, "violations": [str(v) for v in violations]}
            if not violations:
                await self._store(cache_key, encoded, draft, control)
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
            body["messages"] = [
                *body["messages"],
                {"role": "assistant", "content": raw[0] if raw else ""},
                {"role": "user", "content": checker.reask(violations)},
            ]
        raise AssertionError("unreachable")

    async def _answer(
        self,
        request: Request,
        ctx: GuardContext,
        kind: str,
        model: str,
        body: dict[str, Any],
        draft: AuditDraft,
        gate: Any,
        cache_key: str | None,
        control: CacheControl,
    ) -> tuple[dict[str, Any], bytes | None]:
        """The backend's answer to the masked body, from the response cache when it holds one, and
        its serialized form when it may be cached (taken before the output guardrails restore the
        caller's values into it)."""
        hit = await self._lookup(request, ctx, draft, cache_key, control)
        if hit is not None:
            return hit, None
        data, result = await self.router.request(model, kind, body, gate)
        self._mark(request, result, draft)
        ctx.backend = result.backend.id
        encoded = orjson.dumps(data) if cache_key is not None and control.store and cacheable(data) else None
        return data, encoded

    def _cache_key(self, ctx: GuardContext, draft: AuditDraft, kind: str, body: dict[str, Any]) -> str | None:
        """The response-cache key of a masked body (None when the cache is off)."""
        return self.cache.key(ctx.key_id, draft.policy_version or "", kind, body) if self.cache else None

    async def _lookup(
        self,
        request: Request,
        ctx: GuardContext,
        draft: AuditDraft,
        cache_key: str | None,
        control: CacheControl,
        stream: bool = False,
    ) -> dict[str, Any] | None:
        """The cached answer for this request, if the cache is on and holds one (for a stream: one
        it can replay); says hit or miss in a header and the audit record."""
        if self.cache is None or cache_key is None:
            return None
        hit = await self.cache.get(cache_key) if control.lookup else None
        if hit is not None and stream and not replayable(hit[0]):
            hit = None
        state = request.scope["state"]
        draft.cache = "hit" if hit else "miss"
        state.setdefault("extra_headers", {})["x-mixguard-cache"] = draft.cache
        if hit is None:
            return None
        data, backend = hit
        state["backend"] = draft.backend = ctx.backend = backend
        return data

    async def _replayed_stream(
        self,
        request: Request,
        ctx: GuardContext,
        body: dict[str, Any],
        draft: AuditDraft,
        cache_key: str | None,
        control: CacheControl,
    ) -> StreamStart | None:
        data = await self._lookup(request, ctx, draft, cache_key, control, stream=True)
        if data is None:
            return None
        events = replay(data, include_usage=_wants_usage(body))
        return StreamStart(RouteResult(CachedBackend(ctx.backend or "")), await events.__anext__(), events)

    async def _store(
        self, cache_key: str | None, encoded: bytes | None, draft: AuditDraft, control: CacheControl
    ) -> None:
        if (
            self.cache is not None
            and cache_key is not None
            and encoded is not None
            and await self.cache.put(cache_key, encoded, draft.backend or "", control.ttl_s)
        ):  # first attempt only
            draft.cache = "stored"

    async def _check_answer(self, ctx: GuardContext, kind: str, data: dict[str, Any]) -> None:
        """Output rules on a whole answer (topic rules with check_output)."""
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

    async def _events(
        self, ctx: GuardContext, kind: str, start: Any, draft: AuditDraft, recorder: StreamRecorder | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        async def raw() -> AsyncIterator[dict[str, Any]]:
            parts = draft.answer_parts
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
        self,
        ctx: GuardContext,
        kind: str,
        model: str,
        start: Any,
        draft: AuditDraft,
        checker: ContractChecker | None = None,
        recorder: StreamRecorder | None = None,
        cache_key: str | None = None,
        control: CacheControl = CacheControl(),
    ) -> AsyncIterator[dict[str, Any]]:
        """A stream's events (caller's view), accounted as every stream is, whatever its endpoint:
        time to first token and usage in the audit record, token metrics and the tokens-per-minute
        charge, end-of-stream checks (schema contract, output topic rules), the next turn's prewarm
        and the response cache."""
        shown: list[str] = []  # what the caller saw: for end-of-stream checks and the next turn
        end_checks = checker is not None or self.pipeline.checks_answers(ctx)
        keep = kind == "chat" and bool(self.pipeline)
        async for ev in self._events(ctx, kind, start, draft, recorder):
            if keep or end_checks:
                for choice in ev.get("choices") or []:
                    if (piece := _first_piece(kind, choice)) is not None:
                        shown.append(piece)
            if draft.ttft_ms is None:
                draft.ttft_ms = (time.perf_counter() - draft.t0) * 1000
            if ev.get("usage"):
                draft.usage = ev["usage"]
                if draft.cache != "hit":
                    self._count_tokens(model, start.result.backend.id, ev["usage"])
                    self._charge(ctx, ev["usage"])
            if end_checks:
                await self._stream_end_checks(ctx, ev, shown, draft, checker)
            yield ev
        if keep:
            self.pipeline.answered(ctx, ["".join(shown)])
        if (
            recorder is not None
            and (draft.schema is None or draft.schema["valid"])
            and (whole := recorder.completion("".join(draft.answer_parts))) is not None
        ):
            await self._store(cache_key, orjson.dumps(whole), draft, control)

    async def _sse_body(
        self,
        ctx: GuardContext,
        kind: str,
        model: str,
        start: Any,
        draft: AuditDraft,
        checker: ContractChecker | None = None,
        recorder: StreamRecorder | None = None,
        cache_key: str | None = None,
        control: CacheControl = CacheControl(),
        show_usage: bool = True,
    ) -> AsyncIterator[bytes]:
        try:
            async for ev in self._accounted(ctx, kind, model, start, draft, checker, recorder, cache_key, control):
                if ev.get("usage") and not show_usage:
                    if not ev.get("choices"):
                        continue  # the usage-only last chunk
                    ev = {k: v for k, v in ev.items() if k != "usage"}
                yield _sse(ev)
            yield b"data: [DONE]\n\n"
        except (BackendError, errors.GatewayError) as exc:
            body = self._error_event(exc)
            draft.error_code = body["error"].get("code")
            yield _sse(body)

    def _stream_error(self, draft: AuditDraft) -> Callable[[Exception], dict[str, Any]]:
        """Maps a failure inside a Responses stream to its error payload, and notes it for the audit."""

        def on_error(exc: Exception) -> dict[str, Any]:
            body = self._error_event(exc)
            draft.error_code = body["error"].get("code")
            return body

        return on_error

    async def _stream_end_checks(
        self,
        ctx: GuardContext,
        ev: dict[str, Any],
        shown: list[str],
        draft: AuditDraft,
        checker: ContractChecker | None,
    ) -> None:
        """Streams cannot be taken back: rules on the whole answer are reported in the final chunk."""
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
                draft.schema = {"valid": not violations, "attempts": 1, "violations": note["schema"]["violations"]}
                if violations:
                    mode = checker.contract.mode
                    ctx.decisions.append(
                        Decision(
                            "schema",
                            f"schema.{checker.contract.name}",
                            "block" if mode == "enforce" else "monitor",
                            1.0,
                            mode,
                            {},
                        )
                    )
            if not (await self.pipeline.check_answer(ctx, text)).allowed:
                choice["finish_reason"] = "content_filter"
                note["topic"] = "refused"
            if note:
                ev["mixguard"] = note

    # --- Responses API -------------------------------------------------------------------------
    async def responses(self, request: Request) -> Response:
        draft = self._draft(request, "responses")
        principal, raw, lp = await self._begin(request, draft)
        body = validation.parse("responses", raw, lp.policy.request.unknown_fields).body
        chat = responses_api.to_chat_body(body)
        model = self._known_model(request, chat["model"], draft)
        draft.stream = bool(body.get("stream"))
        ctx = self._context(request, principal, lp)
        try:
            await self._guard(ctx, "chat", chat, draft)
        except errors.PolicyRefusal as r:
            if not r.as_completion:
                raise
            draft.refused = True
            data = refusal_completion("chat", model, r.refusal, ctx.request_id)
            if draft.stream:
                return StreamingResponse(
                    responses_api.stream_events(chunks_of(data), body, self._error_event),
                    media_type="text/event-stream",
                    headers=SSE_HEADERS,
                )
            return _json(responses_api.from_chat_response(data, body))
        gate = self._gate(ctx, lp)
        checker = self._contract(lp, "chat")
        if checker is not None:
            checker.prepare(chat)
        if draft.stream:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}
            start = await self.router.open_stream(model, "chat", chat, gate)
            self._mark(request, start.result, draft)
            ctx.backend = start.result.backend.id
            events = self._accounted(ctx, "chat", model, start, draft, checker)
            return StreamingResponse(
                responses_api.stream_events(events, body, self._stream_error(draft)),
                media_type="text/event-stream",
                headers=SSE_HEADERS,
            )
        data = await self._request_with_contract(request, ctx, "chat", model, chat, draft, checker, gate)
        if draft.cache != "hit":
            self._count_tokens(model, ctx.backend or "", data.get("usage"))
            self._charge(ctx, data.get("usage"))
        return _json(responses_api.from_chat_response(data, body))

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
        checks = await asyncio.gather(self.redis.ping(), *(b.probe() for b in self.router.backends))
        redis_ok, redis_reason = checks[0]
        backends = {b.id: {"ok": ok, "reason": reason} for b, (ok, reason) in zip(self.router.backends, checks[1:])}
        groups_ok = all(any(backends[b.id]["ok"] for b in grp) for grp in self.router.groups.values())
        ready = redis_ok and groups_ok
        return _json(
            {
                "status": "ready" if ready else "not_ready",
                "checks": {"redis": {"ok": redis_ok, "reason": redis_reason}, "backends": backends},
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
    request.scope.setdefault("state", {})["error_code"] = exc.code
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
    add("/admin/audit/{record_id}", pages.detail, methods=["GET"])
    app.add_exception_handler(errors.GatewayError, _gateway_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_middleware(EdgeMiddleware, on_done=gw.request_done)
    return app
