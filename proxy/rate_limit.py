"""Per-key request and token rate limits (LiteLLM's `rpm_limit` / `tpm_limit` on a key), in Redis.

Each limit is a token bucket that holds up to one minute's allowance and refills continuously
(limit / 60 per second), kept in one Redis hash per key and limit and updated by a Lua script with
Redis' own clock: replicas that share Redis share the limit, there is no window boundary at which
a client can send twice its allowance, and no lock. A request takes one unit of its key's RPM
bucket before any guardrail runs (one Redis call checks both buckets; keys without limits make
none); its tokens (from `usage`) are taken from the TPM bucket after the answer, in the
background, so the bucket may go below zero and later requests wait until it refills.

Redis errors fail open (the request goes on, a warning is logged and counted): a limit protects
capacity, and an outage of the limiter must not become an outage of the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

from . import errors
from .metrics import METRICS

log = logging.getLogger("mixguard.ratelimit")

# KEYS: the key's request bucket, its token bucket. ARGV: 'admit' or 'charge', requests per minute
# (0: no limit), tokens per minute (0: no limit), tokens to take (charge). Admit takes one request
# unit only when both buckets allow it (the token bucket only needs to be above zero); charge
# takes the tokens, even below zero. Returns, for requests then tokens: allowed (0/1), level
# after (a string: Redis truncates Lua numbers), milliseconds until one unit is back.
_BUCKETS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function level_of(key, limit)
  local s = redis.call('HMGET', key, 'level', 'ts')
  local level = tonumber(s[1]) or limit
  local ts = tonumber(s[2]) or now
  return math.min(limit, level + (now - ts) * limit / 60.0)
end
local function save(key, level)
  redis.call('HSET', key, 'level', tostring(level), 'ts', tostring(now))
  redis.call('EXPIRE', key, 120)
end
local function wait_ms(level, limit)
  if level >= 1 then return 0 end
  return math.ceil((1 - level) / (limit / 60.0) * 1000)
end
local rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {1, '0', 0, 1, '0', 0}
if ARGV[1] == 'charge' then
  local level = level_of(KEYS[2], tpm) - tonumber(ARGV[4])
  save(KEYS[2], level)
  return out
end
local r, k = 0, 0
if rpm > 0 then r = level_of(KEYS[1], rpm); if r < 1 then out[1] = 0 end end
if tpm > 0 then k = level_of(KEYS[2], tpm); if k <= 0 then out[4] = 0 end end
if rpm > 0 then
  if out[1] == 1 and out[4] == 1 then r = r - 1 end
  save(KEYS[1], r); out[2] = tostring(r); out[3] = wait_ms(r, rpm)
end
if tpm > 0 then save(KEYS[2], k); out[5] = tostring(k); out[6] = wait_ms(k, tpm) end
return out
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
        self._charges: set[asyncio.Task] = set()

    def bind_redis(self, client: Any) -> None:
        self._script = client.register_script(_BUCKETS)

    async def _run(self, key_id: str, *args: Any) -> list[Any] | None:
        if self._script is None:
            return None
        try:
            return await self._script(keys=[f"{self.prefix}{key_id}:rpm", f"{self.prefix}{key_id}:tpm"], args=args)
        except Exception as exc:  # fail open: see the module docstring
            log.warning("rate limiter unavailable: %s", type(exc).__name__)
            METRICS.rate_limited.labels("error").inc()
            return None

    async def admit(self, key_id: str) -> dict[str, str]:
        """OpenAI's rate-limit headers for the response; raises RateLimited (429, with
        `retry-after`) when the key has no request or token allowance left. One Redis call."""
        rpm, tpm = self.limits.get(key_id, (None, None))
        if not rpm and not tpm:
            return {}  # a key without limits costs no Redis call
        out = await self._run(key_id, "admit", rpm or 0, tpm or 0, 0)
        if out is None:
            return {}
        headers: dict[str, str] = {}
        refused: tuple[str, int, Verdict] | None = None
        for i, (unit, limit) in enumerate((("requests", rpm), ("tokens", tpm))):
            if not limit:
                continue
            allowed, level, wait_ms = out[3 * i : 3 * i + 3]
            v = Verdict(bool(allowed), limit, max(0, math.floor(float(level))), math.ceil(int(wait_ms) / 1000))
            headers.update(v.headers(unit))
            if not v.allowed and refused is None:
                refused = (unit, limit, v)
        if refused is not None:
            unit, limit, v = refused
            METRICS.rate_limited.labels(unit).inc()
            raise errors.RateLimited(
                f"Rate limit reached for key '{key_id}': {limit} {unit} per minute. Try again in {v.retry_after_s} s.",
                headers={**headers, "retry-after": str(v.retry_after_s)},
            )
        return headers

    def charge(self, key_id: str, usage: dict[str, Any] | None) -> None:
        """Takes an answer's tokens (prompt + completion) from the key's token bucket, in the
        background: the caller never waits for it."""
        rpm, tpm = self.limits.get(key_id, (None, None))
        tokens = int((usage or {}).get("total_tokens") or 0)
        if tpm and tokens > 0:
            task = asyncio.get_running_loop().create_task(self._run(key_id, "charge", rpm or 0, tpm, tokens))
            self._charges.add(task)
            task.add_done_callback(self._charges.discard)
