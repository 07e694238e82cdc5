"""Whole answers of the backend for repeated identical requests, kept in Redis.

What is cached is what the model returned for the *masked* request, before the output guardrails
run: placeholders, never the caller's values. A hit goes through the same output chain as a fresh
answer (restore from the caller's own vault, invented-PII masking, output topic rules), so the
cache holds no more personal data than the backend saw and every caller gets their own values
back. Keys are scoped by API key, policy version, endpoint and the whole masked body, and signed
with a process key (HMAC) so they reveal nothing of the prompt; a policy change starts afresh.

Streams are cached too: a complete plain-text stream is stored as the whole answer it makes, and
a stream request replays a cached plain-text answer as chunks. The cache is an optimisation: a
Redis error is a miss (logged and counted), never a failed request. Per request, the body's `cache` object (LiteLLM's names) turns it off: `no-cache` skips
the lookup, `no-store` skips the write, `ttl` shortens the lifetime.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from .metrics import METRICS
from .refusals import chunks_of

log = logging.getLogger("mixguard.cache")

#: Body fields that do not change the answer and must not split the cache.
_IGNORED = ("stream", "stream_options", "user", "cache")


@dataclass(frozen=True)
class CacheControl:
    lookup: bool = True
    store: bool = True
    ttl_s: int | None = None

    @classmethod
    def pop_from(cls, body: dict[str, Any]) -> CacheControl:
        """Reads and removes the body's `cache` object (it must never reach a backend)."""
        c = body.pop("cache", None)
        if not isinstance(c, dict):
            return cls()
        ttl = c.get("ttl", c.get("s-maxage"))
        return cls(
            lookup=not c.get("no-cache"),
            store=not c.get("no-store"),
            ttl_s=int(ttl) if isinstance(ttl, (int, float)) and ttl > 0 else None,
        )


class ResponseCache:
    def __init__(self, prefix: str, ttl_s: int, max_bytes: int, secret: bytes) -> None:
        self.prefix = prefix + "rcache:"
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._secret = secret
        self.client: Any = None

    def bind_redis(self, client: Any) -> None:
        self.client = client

    def key(self, key_id: str | None, policy_version: str, kind: str, body: dict[str, Any]) -> str:
        material = orjson.dumps({k: v for k, v in body.items() if k not in _IGNORED}, option=orjson.OPT_SORT_KEYS)
        scope = f"{key_id}|{policy_version}|{kind}|".encode()
        return self.prefix + hmac.new(self._secret, scope + material, hashlib.sha256).hexdigest()

    async def get(self, key: str) -> tuple[dict[str, Any], str] | None:
        """(answer, backend id that produced it), or None."""
        if self.client is None:
            return None
        try:
            raw = await self.client.get(key)
        except Exception as exc:  # a cache must never fail a request
            log.warning("response cache lookup failed: %s", type(exc).__name__)
            METRICS.response_cache.labels("error").inc()
            return None
        METRICS.response_cache.labels("hit" if raw else "miss").inc()
        if not raw:
            return None
        entry = orjson.loads(raw)
        return entry["data"], entry["backend"]

    async def put(self, key: str, data: bytes, backend: str, ttl_s: int | None = None) -> bool:
        """Stores an answer already serialized with orjson (taken before the output guardrails)."""
        if self.client is None or len(data) > self.max_bytes:
            return False
        entry = b'{"data":' + data + b',"backend":' + orjson.dumps(backend) + b"}"
        try:
            await self.client.set(key, entry, ex=min(ttl_s or self.ttl_s, self.ttl_s))
            return True
        except Exception as exc:
            log.warning("response cache write failed: %s", type(exc).__name__)
            METRICS.response_cache.labels("error").inc()
            return False


def cacheable(data: dict[str, Any]) -> bool:
    """Only complete answers: every choice finished normally (not cut by length or a filter)."""
    choices = data.get("choices") or []
    return bool(choices) and all(c.get("finish_reason") in ("stop", "tool_calls") for c in choices)


class StreamRecorder:
    """Watches a stream's raw events (the model's masked answer) for what makes it cacheable: one
    plain choice that finished with `stop` (no tool calls, no second choice); its text is the one
    the gateway already collects for the audit record."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.head: dict[str, Any] | None = None
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.plain = True

    def see(self, ev: dict[str, Any]) -> None:
        if self.head is None:
            self.head = {k: ev.get(k) for k in ("id", "created", "model")}
        if ev.get("usage"):
            self.usage = ev["usage"]
        for c in ev.get("choices") or []:
            delta = c.get("delta") or {}
            if c.get("index", 0) != 0 or delta.get("tool_calls") or delta.get("function_call"):
                self.plain = False
            if c.get("finish_reason"):
                self.finish = c["finish_reason"]

    def completion(self, text: str) -> dict[str, Any] | None:
        """The whole answer `text` makes, shaped as the non-streamed response, or None."""
        if not self.plain or self.finish != "stop" or self.head is None:
            return None
        if self.kind == "chat":
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
            obj = "chat.completion"
        else:
            choice, obj = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}, "text_completion"
        return {**self.head, "object": obj, "choices": [choice], **({"usage": self.usage} if self.usage else {})}


@dataclass(frozen=True)
class CachedBackend:
    """Stands for the deployment that produced a replayed answer (only its id is read)."""

    id: str


def replayable(data: dict[str, Any]) -> bool:
    """A cached answer a stream can replay: one choice of plain text (no tool calls)."""
    choices = data.get("choices") or []
    if len(choices) != 1:
        return False
    msg = choices[0].get("message")
    return (
        isinstance(choices[0].get("text"), str)
        if msg is None
        else isinstance(msg.get("content"), str) and not msg.get("tool_calls")
    )


async def replay(data: dict[str, Any], include_usage: bool) -> AsyncIterator[dict[str, Any]]:
    """A cached whole answer as the stream chunks a backend would have sent."""
    async for chunk in chunks_of(data):
        yield chunk
    if include_usage and data.get("usage"):
        yield {
            "id": data["id"],
            "object": "chat.completion.chunk" if "message" in data["choices"][0] else "text_completion",
            "created": data["created"],
            "model": data["model"],
            "choices": [],
            "usage": data["usage"],
        }
