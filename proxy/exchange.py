"""The typed object one request carries through the gateway's stages (see `Exchange`), and the
audit record it becomes.

Only masked text ever gets into a record: the prompt is taken after the PII guardrail rewrote the
body (and not at all when a request was refused before masking), and the answer is the model's
(placeholder) text with invented identifiers redacted. Values never; entity counts only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from guardrails.base import GuardContext
from guardrails.schema_contract import ContractChecker
from policies.loader import LoadedPolicy

from .auth import Principal
from .response_cache import CacheControl

POLICY_CODES = {"content_policy_violation", "pii_blocked", "topic_blocked", "residency_refused"}


def _outcome(status: int, code: str | None, refused: bool) -> str:
    if refused or code in POLICY_CODES:
        return "blocked"
    if status == 499:
        return "client_closed"
    if 200 <= status < 300:
        return "allowed"
    if status in (401, 403):
        return "unauthorized"
    return "rejected" if status < 500 else "failed"


@dataclass
class Exchange:
    """One request through the gateway, from the edge to its audit record.

    The edge creates it (request id) and reads it back (headers, metric labels, status); the routes
    fill it stage by stage: authenticate (principal) -> admit (policy, rate limit) -> parse (body,
    model) -> guard input (decisions, masked prompt) -> route (backend, attempts, cache) -> guard
    output (answer) -> account (usage, timings) -> record (the audit record, built by `finish()` off
    the request's path). Only configured names and masked text are ever stored here.
    """

    request_id: str
    endpoint: str = ""
    audited: bool = False  # an API route: the record stage writes its audit record
    headers: dict[str, str] = field(default_factory=dict)  # added to the response by the edge
    # authenticate / admit / parse
    principal: Principal | None = None
    policy_loaded: LoadedPolicy | None = None
    kind: str = "chat"  # the shape the backend gets: chat or completions (responses run as chat)
    body: dict[str, Any] = field(default_factory=dict)  # parsed; masked once the input guard ran
    responses_request: dict[str, Any] | None = None  # a parsed Responses body (`body` is its chat form)
    cache_control: CacheControl = field(default_factory=CacheControl)
    cache_key: str | None = None  # of the masked body, when the response cache is on
    contract: ContractChecker | None = None  # the policy's schema contract, when it applies
    gate: Any = None  # residency: what a hosted deployment may receive (see proxy/residency.py)
    client_request_id_sha256: str | None = None  # the client's x-request-id, when it did not look like an id
    ts: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.perf_counter)
    key_id: str | None = None
    app: str | None = None
    policy: str | None = None
    policy_version: str | None = None
    content: str = "truncated"
    truncate_chars: int = 500
    model: str | None = None  # a configured model group (never a client string)
    stream: bool = False
    ctx: GuardContext | None = None
    guard_ms: float | None = None
    ttft_ms: float | None = None
    prompt: str | None = None
    answer_parts: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    backend: str | None = None  # the deployment that answered (or "none")
    fallback_reason: str | None = None
    attempts: list[dict[str, str]] = field(default_factory=list)
    error_code: str | None = None
    refused: bool = False
    client_closed: bool = False  # the client went away before the stream ended
    schema: dict[str, Any] | None = None
    cache: str | None = None  # response cache: hit, miss (not stored), stored; None when off or not looked up
    redact_answer: Callable[[str], str] | None = None
    t_end: float | None = None
    status: int = 500

    def _clip(self, text: str | None) -> str | None:
        if text is None or self.content == "off":
            return None
        if self.content == "truncated" and len(text) > self.truncate_chars:
            return text[: self.truncate_chars] + f"…[+{len(text) - self.truncate_chars} chars]"
        return text

    @property
    def guard(self) -> GuardContext:
        """The guardrails' view of this request (set by the parse stage)."""
        assert self.ctx is not None, "the parse stage sets the guard context"
        return self.ctx

    def finish(self) -> dict[str, Any]:
        """The record; called by the audit writer's task, after the response was sent."""
        status = self.status
        total_ms = ((self.t_end or time.perf_counter()) - self.t0) * 1000
        ctx = self.ctx
        decisions = [
            {
                "guardrail": d.guardrail,
                "rule": d.rule_id,
                "action": d.action,
                "score": round(d.score, 4),
                "mode": d.mode,
                **({"count": d.detail["count"]} if "count" in d.detail else {}),
            }
            for d in (ctx.decisions if ctx else [])
        ]
        answer = "".join(self.answer_parts) if self.answer_parts else None
        if answer and self.redact_answer is not None and self.content != "off":
            answer = self.redact_answer(answer)
        usage = self.usage or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        return {
            "v": 1,
            "id": self.request_id,
            **({"client_request_id_sha256": self.client_request_id_sha256} if self.client_request_id_sha256 else {}),
            "time": datetime.fromtimestamp(self.ts, timezone.utc).isoformat(timespec="milliseconds"),
            "ts": round(self.ts, 3),
            "endpoint": self.endpoint,
            "key_id": self.key_id,
            "app": self.app,
            "model": self.model,
            "stream": self.stream,
            "backend": self.backend,
            "fallback_reason": self.fallback_reason,
            "attempts": self.attempts,
            "policy": self.policy,
            "policy_version": self.policy_version,
            "decisions": decisions,
            "pii": dict(ctx.pii_counts) if ctx else {},
            "outcome": _outcome(status, self.error_code, self.refused),
            "status": status,
            "error_code": self.error_code,
            "schema": self.schema,
            "response_cache": self.cache,
            "usage": {
                "prompt_tokens": usage.get("prompt_tokens"),
                "completion_tokens": usage.get("completion_tokens"),
                "cached_tokens": cached,
            }
            if usage
            else None,
            "prefix_cache_hit": bool(cached) if usage else None,
            "latency_ms": {
                "guardrails": None if self.guard_ms is None else round(self.guard_ms, 3),
                "ttft": None if self.ttft_ms is None else round(self.ttft_ms, 3),
                "total": round(total_ms, 3),
            },
            "content": self.content,
            "prompt": self._clip(self.prompt),
            "answer": self._clip(answer),
        }
