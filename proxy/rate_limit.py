"""Per-key request and token rate limits (LiteLLM's `rpm_limit` / `tpm_limit` on a key), in Redis.

Each limit is a token bucket that holds up to one minute's allowance and refills continuously
(limit / 60 per second), kept in one Redis hash per key and limit and updated by a Lua script with
Redis' own clock: replicas that share Redis share the limit, there is no window boundary at which
a client can send twice its allowance, and no lock. A request takes one unit of its key's RPM
bucket before any guardrail runs; its tokens (from `usage`) are taken from the TPM bucket after
the answer, so the bucket may go below zero and later requests wait until it refills.

Redis errors fail open (the request goes on, a warning is logged and counted): a limit protects
capacity, and an outage of the limiter must not become an outage of the gateway.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from . import errors
from .metrics import METRICS

log = logging.getLogger("mixguard.ratelimit")

# KEYS[1]: the bucket. ARGV: limit per minute, cost now, whether to refuse when the level is below
# the cost (1) or only when it is below zero (0: take the cost anyway, for tokens counted after the
# fact). Returns {allowed (0/1), level after, milliseconds until one unit is back}.
_BUCKET = """
local limit = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local strict = ARGV[3] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = limit / 60.0
local state = redis.call('HMGET', KEYS[1], 'level', 'ts')
local level = tonumber(state[1]) or limit
local ts = tonumber(state[2]) or now
level = math.min(limit, level + (now - ts) * rate)
local allowed = 1
if strict and level < cost then
  allowed = 0
elseif (not strict) and level <= 0 and cost == 0 then
  allowed = 0
else
  level = level - cost
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 120)
local wait = 0
if level < 1 then wait = math.ceil((1 - level) / rate * 1000) end
return {allowed, tostring(level), wait}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int

    def headers(self, unit: str) -> dict[str, str]:
        """OpenAI's rate-limit headers (`x-ratelimit-*-requests|tokens`)."""
        h = {f"x-ratelimit-limit-{unit}": str(self.limit), f"x-ratelimit-remaining-{unit}": str(self.remaining)}
        if self.retry_after_s:
            h[f"x-ratelimit-reset-{unit}"] = f"{self.retry_after_s}s"
        return h


class RateLimiter:
    """The configured keys' limits; `admit` before a request, `charge` its tokens after."""

    def __init__(self, prefix: str, limits: dict[str, tuple[int | None, int | None]]) -> None:
        self.prefix = prefix + "rl:"
        self.limits = limits  # key id -> (requests per minute, tokens per minute)
        self._script: Any = None

    def bind_redis(self, client: Any) -> None:
        self._script = client.register_script(_BUCKET)

    async def _run(self, key: str, limit: int, cost: int, strict: bool) -> Verdict | None:
        if self._script is None:
            return None
        try:
            allowed, level, wait_ms = await self._script(keys=[key], args=[limit, cost, 1 if strict else 0])
        except Exception as exc:  # fail open: see the module docstring
            log.warning("rate limiter unavailable: %s", type(exc).__name__)
            METRICS.rate_limited.labels("error").inc()
            return None
        return Verdict(bool(allowed), limit, max(0, math.floor(float(level))), math.ceil(int(wait_ms) / 1000))

    async def admit(self, key_id: str) -> dict[str, str]:
        """OpenAI's rate-limit headers for the response; raises RateLimited (429, with
        `retry-after`) when the key has no request or token allowance left."""
        rpm, tpm = self.limits.get(key_id, (None, None))
        headers: dict[str, str] = {}
        for unit, limit, verdict in (
                ("requests", rpm, await self._run(f"{self.prefix}{key_id}:rpm", rpm, 1, True) if rpm else None),
                ("tokens", tpm, await self._run(f"{self.prefix}{key_id}:tpm", tpm, 0, False) if tpm else None)):
            if verdict is None:
                continue
            headers.update(verdict.headers(unit))
            if not verdict.allowed:
                METRICS.rate_limited.labels(unit).inc()
                raise errors.RateLimited(
                    f"Rate limit reached for key '{key_id}': {limit} {unit} per minute. "
                    f"Try again in {verdict.retry_after_s} s.",
                    headers={**headers, "retry-after": str(verdict.retry_after_s)})
        return headers

    async def charge(self, key_id: str, usage: dict[str, Any] | None) -> None:
        """Takes an answer's tokens (prompt + completion) from the key's token bucket."""
        tpm = self.limits.get(key_id, (None, None))[1]
        tokens = int((usage or {}).get("total_tokens") or 0)
        if tpm and tokens > 0:
            await self._run(f"{self.prefix}{key_id}:tpm", tpm, tokens, False)
