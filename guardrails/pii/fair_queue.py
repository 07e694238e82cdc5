"""A fair queue for the analysis workers: slots are granted round-robin across API keys.

Why: analysis runs on a few worker threads (processes for long texts). Served first come, first
served, one key that sends 10,000-message requests fills the queue and every other key waits behind
it. Here each key has its own line; when a worker frees up, the next key in turn gets it, so a small
request from a quiet key waits for at most one job per worker, however much a noisy key has queued.
A key may also be held to fewer workers than the pool has (`per_key`). Bulk jobs (those of a
request with a lot of text, see `PiiAnalyzer`) never take the last free worker: however many
bulk requests run, a small request finds a worker at once instead of waiting for a bulk job.

Jobs are small (a few thousand characters, see `PiiAnalyzer`): a slot is held while the worker
really runs, and a job whose request gave up (timeout, client gone) and has not started never
starts, so cancelled analysis stops within one job.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")


class FairQueue:
    """`capacity` worker slots shared round-robin by tenants, at most `per_key` at once each, and
    at most `bulk_limit` (default `capacity - 1`, at least 1) for bulk jobs. A queue in front of
    worker processes may have more slots than workers (two each: the next job waits in the pipe);
    its bulk limit is then one worker less than there are."""

    def __init__(self, capacity: int, per_key: int | None = None, bulk_limit: int | None = None) -> None:
        self.capacity = max(1, capacity)
        self.per_key = max(1, min(per_key or self.capacity, self.capacity))
        self.bulk_limit = max(1, min(self.capacity - 1 if bulk_limit is None else bulk_limit, self.capacity))
        self._free = self.capacity
        self._bulk = 0
        self._active: dict[str, int] = {}
        self._lines: OrderedDict[str, deque[tuple[asyncio.Future[None], bool]]] = OrderedDict()
        self.granted = 0  # jobs started, for metrics and tests
        self.dropped = 0  # jobs whose request gave up before they started

    def waiting(self, tenant: str | None = None) -> int:
        """Jobs waiting for a slot (of one tenant, or all)."""
        if tenant is not None:
            return len(self._lines.get(tenant, ()))
        return sum(len(line) for line in self._lines.values())

    def in_flight(self) -> int:
        """Jobs holding a slot (running, or next in a worker's pipe)."""
        return self.capacity - self._free

    def running(self, tenant: str) -> int:
        return self._active.get(tenant, 0)

    def _may_start(self, tenant: str, bulk: bool) -> bool:
        return (
            self._free > 0 and self._active.get(tenant, 0) < self.per_key and (not bulk or self._bulk < self.bulk_limit)
        )

    def _grant(self, tenant: str, bulk: bool) -> None:
        self._free -= 1
        self._bulk += bulk
        self._active[tenant] = self._active.get(tenant, 0) + 1
        self.granted += 1

    def _release(self, tenant: str, bulk: bool) -> None:
        self._free += 1
        self._bulk -= bulk
        left = self._active.get(tenant, 1) - 1
        if left:
            self._active[tenant] = left
        else:
            self._active.pop(tenant, None)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to the tenants in turn: the first tenant in line that may start gets one
        and goes to the back of the line."""
        while self._free > 0 and self._lines:
            tenant = next((t for t, line in self._lines.items() if self._may_start(t, line[0][1])), None)
            if tenant is None:
                return  # everyone waiting is at their per-key limit, or waits with bulk work
            line = self._lines[tenant]
            waiter, bulk = line.popleft()
            if line:
                self._lines.move_to_end(tenant)
            else:
                del self._lines[tenant]
            if waiter.done():  # cancelled while waiting
                continue
            self._grant(tenant, bulk)
            waiter.set_result(None)

    async def _acquire(self, tenant: str, bulk: bool) -> None:
        if not self._lines and self._may_start(tenant, bulk):
            self._grant(tenant, bulk)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (waiter, bulk)
        self._lines.setdefault(tenant, deque()).append(entry)
        self._dispatch()  # a free worker that the waiting bulk jobs may not take can be this one's
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(tenant, bulk)  # granted in the same tick it was cancelled: give it back
            else:
                self.dropped += 1
                line = self._lines.get(tenant)
                if line is not None and entry in line:
                    line.remove(entry)
                    if not line:
                        del self._lines[tenant]
            raise

    async def run(self, tenant: str, executor: Executor, fn: Callable[..., T], *args: Any, bulk: bool = False) -> T:
        """Run `fn(*args)` on `executor` when `tenant`'s turn comes. The slot is held until the
        worker has really finished, even if the caller stops waiting (a thread cannot be
        interrupted; the next job must not be started beside it)."""
        await self._acquire(tenant, bulk)
        loop = asyncio.get_running_loop()
        try:
            job = executor.submit(fn, *args)
        except BaseException:
            self._release(tenant, bulk)
            raise

        def finished(_: Any) -> None:
            try:
                loop.call_soon_threadsafe(self._release, tenant, bulk)
            except RuntimeError:  # the loop closed while the worker ran (shutdown): nothing to hand on
                pass

        job.add_done_callback(finished)
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            job.cancel()  # not started yet (the pool was busy with a job of another queue): never starts
            raise
