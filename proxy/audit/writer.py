"""Writes audit records off the hot path, and never drops one silently.

`submit()` only appends to an in-memory queue. A background task stamps records into the chain
and appends them to the Redis Stream in batches (XADD + signed head in one MULTI). If Redis fails,
records go to a local spool file (JSONL, fsynced per batch) and everything after them goes there
too, so order is kept; when Redis answers again the spool is replayed in order, then truncated.
An optional sink (sink.py) gets each batch as it is written, exactly as stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from ..exchange import Exchange
from ..metrics import METRICS
from .chain import Chain, sign_head
from .sink import Sink

log = logging.getLogger("mixguard.audit")

BATCH = 256
RETRY_S = 1.0


class AuditWriter:
    def __init__(
        self, key: bytes, prefix: str, spool_path: str | Path, retention_records: int, chain_id: str | None = None
    ) -> None:
        self.key = key
        self.stream = f"{prefix}audit"
        self.heads = f"{prefix}audit:heads"
        self.spool_path = Path(spool_path)
        self.retention = retention_records
        self.chain = Chain(key, chain_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        self.redis: Any = None
        self._queue: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._next_try = 0.0
        self.sink: Sink | None = None  # forwards records as they are written (set by proxy.wiring)
        self.spooling = self.spool_path.exists() and self.spool_path.stat().st_size > 0
        if self.spooling:
            log.warning("audit spool %s holds records of an earlier run: they will be replayed", self.spool_path)

    # --- hot path ------------------------------------------------------------------------------
    def submit(self, record: Any) -> None:
        """Queue a record, or an Exchange whose `finish()` builds it later, off the request's path."""
        self._queue.append(record)
        if not self._wake.is_set():
            self._wake.set()

    @property
    def degraded(self) -> bool:
        """True while records go to the spool instead of Redis."""
        return self.spooling

    # --- background ----------------------------------------------------------------------------
    def start(self, redis: Any) -> None:
        self.redis = redis
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")
        if self.sink is not None:
            self.sink.start()

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except asyncio.TimeoutError:
                self._task.cancel()
        if self._queue:  # could not reach Redis in time: keep them on disk
            self._spool([self.chain.stamp(r) for r in self._drain(len(self._queue))])
        if self.sink is not None:
            await self.sink.close()

    def _drain(self, n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(min(n, len(self._queue))):
            item = self._queue.popleft()
            try:
                out.append(item.finish() if isinstance(item, Exchange) else item)
            except Exception as exc:  # a record that cannot be built is reported, never silently lost
                METRICS.audit_records.labels("lost").inc()
                log.critical("AUDIT RECORD LOST: could not build a record (%s)", type(exc).__name__)
        return out

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), RETRY_S if self.spooling else None)
                except asyncio.TimeoutError:
                    pass
            if self.spooling and time.monotonic() >= self._next_try:
                await self._replay()
            batch = [self.chain.stamp(r) for r in self._drain(BATCH)]
            if not batch:
                continue
            if self.sink is not None:
                self.sink.offer(batch)
            if not self.spooling:
                try:
                    await self._append(batch)
                    METRICS.audit_records.labels("redis").inc(len(batch))
                    continue
                except Exception as exc:  # any Redis/socket failure: spool, keep order
                    log.error("audit store unavailable (%s): spooling to %s", type(exc).__name__, self.spool_path)
                    self.spooling = True
                    self._next_try = time.monotonic() + RETRY_S
            self._spool(batch)
            if self._closing:
                await self._replay()

    async def _append(self, batch: list[dict[str, Any]]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for rec in batch:
            pipe.xadd(self.stream, {"r": orjson.dumps(rec)}, maxlen=self.retention, approximate=True)
        last = batch[-1]
        pipe.hset(
            self.heads,
            last["chain"],
            orjson.dumps(
                {
                    "seq": last["seq"],
                    "mac": last["mac"],
                    "sig": sign_head(self.key, last["chain"], last["seq"], last["mac"]),
                }
            ),
        )
        await pipe.execute()

    def _spool(self, batch: list[dict[str, Any]]) -> None:
        try:
            self.spool_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # owner only: masked prompts and answers are still what a reviewer is trusted with
            fd = os.open(self.spool_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.fchmod(fd, 0o600)  # a file left by an older version may be wider
            with os.fdopen(fd, "ab") as f:
                f.write(b"".join(orjson.dumps(r) + b"\n" for r in batch))
                f.flush()
                os.fsync(f.fileno())
            METRICS.audit_records.labels("spool").inc(len(batch))
        except OSError as exc:
            METRICS.audit_records.labels("lost").inc(len(batch))
            log.critical(
                "AUDIT RECORDS LOST: %d records could not be spooled to %s (%s)",
                len(batch),
                self.spool_path,
                exc.strerror,
            )

    async def _not_yet_stored(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The spooled records Redis does not hold yet. A batch whose EXEC timed out on our side may
        still have been applied by the server; appends and the chain head are one transaction, so
        a record is stored exactly when its seq is at most its chain's stored head."""
        chains = sorted({str(r.get("chain")) for r in records})
        if not chains:
            return records
        heads = await self.redis.hmget(self.heads, chains)
        stored = {c: int(orjson.loads(h)["seq"]) if h else -1 for c, h in zip(chains, heads)}
        fresh = [r for r in records if int(r.get("seq", -1)) > stored[str(r.get("chain"))]]
        if len(fresh) < len(records):
            log.warning(
                "audit replay: %d spooled records were already stored, not written twice", len(records) - len(fresh)
            )
        return fresh

    async def _replay(self) -> None:
        """Move the spool into Redis, in order; stay in spool mode if Redis is still down."""
        self._next_try = time.monotonic() + RETRY_S
        try:
            await self.redis.ping()
            lines = self.spool_path.read_bytes().splitlines() if self.spool_path.exists() else []
            records = await self._not_yet_stored([orjson.loads(x) for x in lines if x.strip()])
            for i in range(0, len(records), BATCH):
                await self._append(records[i : i + BATCH])
        except Exception as exc:  # still down (or spool unreadable): try again later
            log.debug("audit replay deferred: %s", type(exc).__name__)
            return
        self.spool_path.write_bytes(b"")
        self.spooling = False
        log.warning("audit store is back: %d spooled records replayed in order", len(records))
