"""The reversible PII vault: value ⇄ placeholder per (API key, conversation), in Redis.

One Lua call per request allocates placeholders atomically (replicas agree on numbering), so the
same value gets the same placeholder in every turn and the masked prefix stays byte-stable for
SGLang's prefix cache. Values are stored Fernet-encrypted; lookups go by a keyed hash of the
value, so neither a Redis dump nor the key names reveal PII.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import time
from collections import OrderedDict
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger("mixguard.pii.vault")

_ALLOCATE = """
local out = {}
for i = 2, #ARGV, 3 do
  local ent, h, enc = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local ph = redis.call('HGET', KEYS[1], 'v:' .. h)
  if not ph and enc == '' then
    ph = ''  -- known to this process but gone from Redis: the caller sends the value again
  elseif not ph then
    local n = redis.call('HINCRBY', KEYS[1], 'n:' .. ent, 1)
    ph = '<' .. ent .. '_' .. n .. '>'
    redis.call('HSET', KEYS[1], 'v:' .. h, ph, 'p:' .. ph, enc)
  end
  out[#out + 1] = ph
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return out
"""


def vault_key_from_env(var: str = "MIXGUARD_VAULT_KEY") -> bytes:
    """A Fernet key from the environment, or a random one for this process (with a warning)."""
    raw = os.environ.get(var)
    if raw:
        try:
            Fernet(raw.encode())
            return raw.encode()
        except (ValueError, TypeError):
            # Any passphrase works too: derive a key from it.
            return base64.urlsafe_b64encode(hashlib.sha256(raw.encode()).digest())
    log.warning(
        "%s is not set: vault values are encrypted with a per-process key and will not "
        "survive a restart or be shared between replicas",
        var,
    )
    return Fernet.generate_key()


class Vault:
    def __init__(self, redis: object, prefix: str, key: bytes, ttl_seconds: int = 86400) -> None:
        self.redis = redis
        self.prefix = prefix
        self.fernet = Fernet(key)
        self._mac_key = hashlib.sha256(b"mixguard-vault-mac:" + key).digest()
        self.ttl = ttl_seconds
        self._script: Any = None  # redis-py's AsyncScript, registered on first use
        # (scope, digest) -> (placeholder, when last seen): values of earlier turns are sent by
        # digest only; the script confirms each still exists (or says it is gone).
        self._known: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._known_max = 100_000

    def digest(self, value: str) -> str:
        return hmac.new(self._mac_key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def scope_key(self, key_id: str, conversation: str) -> str:
        return f"{self.prefix}vault:{key_id}:{conversation}"

    async def placeholders(self, key_id: str, conversation: str, items: list[tuple[str, str]]) -> list[str]:
        """Placeholders for (entity, value) pairs, allocating new ones where needed."""
        if not items:
            return []
        if self._script is None:
            self._script = self.redis.register_script(_ALLOCATE)  # type: ignore[attr-defined]
        scope = self.scope_key(key_id, conversation)
        now = time.monotonic()
        digests = [self.digest(value) for _, value in items]
        known = [self._known.get((scope, d)) for d in digests]
        # Values this process saw in this scope are sent by digest only, without encrypting them again.
        by_digest = {i for i, k in enumerate(known) if k is not None and now - k[1] < self.ttl}
        result = await self._allocate(scope, items, digests, by_digest)
        lost = [i for i, ph in enumerate(result) if not ph]
        if lost:  # Redis lost them (restart, flush): allocate again with the values
            again = await self._allocate(scope, [items[i] for i in lost], [digests[i] for i in lost], set())
            for i, ph in zip(lost, again):
                result[i] = ph
        for d, ph in zip(digests, result):
            self._known[(scope, d)] = (ph, now)
            self._known.move_to_end((scope, d))
        while len(self._known) > self._known_max:
            self._known.popitem(last=False)
        return result

    async def _allocate(
        self, scope: str, items: list[tuple[str, str]], digests: list[str], by_digest: set[int]
    ) -> list[str]:
        args: list[object] = [self.ttl]
        for i, ((entity, value), d) in enumerate(zip(items, digests)):
            args += [entity, d, b"" if i in by_digest else self.fernet.encrypt(value.encode())]
        out = await self._script(keys=[scope], args=args)
        return [p.decode() if isinstance(p, bytes) else p for p in out]

    async def originals(self, key_id: str, conversation: str, placeholders: list[str]) -> dict[str, str]:
        """Decrypt the values of placeholders that belong to this scope (others are absent)."""
        if not placeholders:
            return {}
        raw = await self.redis.hmget(self.scope_key(key_id, conversation), [f"p:{p}" for p in placeholders])  # type: ignore[attr-defined]
        out = {}
        for p, enc in zip(placeholders, raw):
            if enc is None:
                continue
            try:
                out[p] = self.fernet.decrypt(enc).decode()
            except InvalidToken:
                log.warning("vault entry could not be decrypted (key changed?)")
        return out
