"""Forwarding audit records, as they are written, to a SIEM: a webhook (JSON batches, HMAC-signed)
or syslog over UDP (RFC 5424, one record per message).

A sink gets exactly the records the writer stores: masked and signed, so the redaction is the
audit log's own and a receiver can check signatures with the audit key. It runs off the hot path
and off the writer's path: `offer()` appends to a bounded queue, a background task sends; when the
queue is full, or a batch still fails after its retries, records are dropped and counted in
`mixguard_audit_sink_records_total{result}` (the stream in Redis keeps them either way). Errors
are logged by type only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import socket
from collections import deque
from datetime import datetime, timezone
from typing import Any

import orjson
from prometheus_client import Counter

from ..metrics import METRICS
from ..settings import AuditSinkSettings

log = logging.getLogger("mixguard.audit.sink")

SINK_RECORDS = Counter(
    "mixguard_audit_sink_records",
    "Audit records forwarded to the configured sink: sent, dropped (queue full) or failed (after retries)",
    ["result"],
    registry=METRICS.registry,
)
RETRIES = (0.5, 1.0)  # seconds before the second and third try of a batch


class Sink:
    """The queue and its sending task; subclasses say how one batch is sent."""

    def __init__(self, queue_max: int, batch: int) -> None:
        self._queue: deque[dict[str, Any]] = deque()
        self.queue_max, self.batch = queue_max, batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def offer(self, records: list[dict[str, Any]]) -> None:
        """Queue records to forward; never blocks, never raises."""
        room = self.queue_max - len(self._queue)
        if room < len(records):
            SINK_RECORDS.labels("dropped").inc(len(records) - max(room, 0))
            records = records[: max(room, 0)]
        self._queue.extend(records)
        if records and not self._wake.is_set():
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-sink")

    async def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, for up to `timeout` seconds."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except asyncio.TimeoutError:
                self._task.cancel()
        if self._queue:
            SINK_RECORDS.labels("dropped").inc(len(self._queue))
            self._queue.clear()
        await self._close()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
            batch = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
            if batch:
                await self._deliver(batch)

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        for attempt in range(len(RETRIES) + 1):
            try:
                await self._send(batch)
                SINK_RECORDS.labels("sent").inc(len(batch))
                return
            except Exception as exc:  # any transport failure: retry, then count and move on
                if attempt == len(RETRIES) or self._closing:
                    SINK_RECORDS.labels("failed").inc(len(batch))
                    log.error("audit sink: %d records not delivered (%s)", len(batch), type(exc).__name__)
                    return
                await asyncio.sleep(RETRIES[attempt])

    async def _send(self, batch: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        return None


class WebhookSink(Sink):
    """POSTs `{"records": [...]}`; with a secret, `x-mixguard-signature: sha256=<HMAC-SHA256 of the
    body>` lets the receiver reject anything the gateway did not send. A non-2xx answer is a failure."""

    def __init__(self, url: str, secret: bytes | None, queue_max: int, batch: int, timeout_s: float) -> None:
        super().__init__(queue_max, batch)
        self.url, self.secret, self.timeout_s = url, secret, timeout_s
        self._session: Any = None

    async def _send(self, batch: list[dict[str, Any]]) -> None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        body = orjson.dumps({"records": batch})
        headers = {"content-type": "application/json"}
        if self.secret:
            headers["x-mixguard-signature"] = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        async with self._session.post(self.url, data=body, headers=headers) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"webhook answered {resp.status}")

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()


class SyslogSink(Sink):
    """One RFC 5424 message per record over UDP: facility log audit (13), severity info, app-name
    mixguard, msgid audit, the record's JSON as the message. A datagram larger than the network
    allows is the receiver's limit to set (records are clipped by the policy's audit.truncate_chars)."""

    PRI = 13 * 8 + 6

    def __init__(self, host: str, port: int, queue_max: int, batch: int) -> None:
        super().__init__(queue_max, batch)
        self.addr = (host, port)
        self.hostname = socket.gethostname()
        self._transport: Any = None

    def _message(self, rec: dict[str, Any]) -> bytes:
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        head = f"<{self.PRI}>1 {stamp} {self.hostname} mixguard {os.getpid()} audit - "
        return head.encode() + orjson.dumps(rec)

    async def _send(self, batch: list[dict[str, Any]]) -> None:
        if self._transport is None:
            loop = asyncio.get_running_loop()
            self._transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=self.addr)
        for rec in batch:
            self._transport.sendto(self._message(rec))

    async def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def build_sink(cfg: AuditSinkSettings) -> Sink:
    """The sink a config asks for (settings validated that its target is given)."""
    if cfg.type == "webhook":
        secret = os.environ.get(cfg.secret_env, "").encode() if cfg.secret_env else b""
        if cfg.secret_env and not secret:
            log.warning("audit sink: %s is unset, webhook bodies go unsigned", cfg.secret_env)
        return WebhookSink(cfg.url or "", secret or None, cfg.queue_max, cfg.batch, cfg.timeout_s)
    host, _, port = (cfg.address or "").rpartition(":")
    return SyslogSink(host.strip("[]") or "127.0.0.1", int(port), cfg.queue_max, cfg.batch)
