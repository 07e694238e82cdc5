"""The answer prewarm (the answer analysed after responding, for the next turn's history) is
background work: it runs when a worker is free and is skipped, and counted, while every worker is
busy with live requests."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from guardrails.base import GuardContext
from guardrails.pii.analyzer import PiiAnalyzer, engine_from_spec
from guardrails.pii.engine import DEFAULT_RECOGNIZERS, DEFAULT_SPACY_MODEL
from guardrails.pii_guardrail import PiiGuardrail
from policies.store import PolicyStore

ROOT = Path(__file__).resolve().parents[2]
SPEC = (DEFAULT_SPACY_MODEL, sorted(DEFAULT_RECOGNIZERS), [])
ANSWER = "Certainly, Ms Okonkwo: your parcel to Lagos leaves on Monday."


class _Vault:
    _mac_key = b"k" * 32


def test_the_answer_prewarm_runs_only_when_a_worker_is_free() -> None:
    analyzer = PiiAnalyzer(engine_from_spec(SPEC), workers=2)
    guard = PiiGuardrail(analyzer, _Vault(), PolicyStore(ROOT / "policies"))  # type: ignore[arg-type]
    ctx = GuardContext("key", "app", "default", "req")

    async def scenario() -> None:
        release = threading.Event()
        # two live jobs of another key hold both workers
        busy = [asyncio.ensure_future(analyzer.queue.run("other", analyzer.pool, release.wait, 10)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert not analyzer.has_spare_worker()
        guard.answered(ctx, [ANSWER])
        assert analyzer.counts["prewarm_skipped"] == 1
        assert not guard._background  # nothing was queued behind the live jobs
        release.set()
        await asyncio.gather(*busy)
        assert analyzer.has_spare_worker()
        guard.answered(ctx, [ANSWER])
        await asyncio.gather(*guard._background)
        assert analyzer.counts["analyzed"] == 1 and analyzer.counts["prewarm_skipped"] == 1
        # the next turn sends the answer back as history: a cache hit
        spans = await analyzer.analyze_many([ANSWER], guard._entities(guard._policy(ctx)), 10, "key")
        assert analyzer.counts["memory"] == 1 and any("Okonkwo" in ANSWER[s.start : s.end] for s in spans[0])

    try:
        asyncio.run(scenario())
    finally:
        analyzer.close()
