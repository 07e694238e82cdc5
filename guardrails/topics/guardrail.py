"""The topic guardrail: refuses prompts (and, if the policy says so, answers) on denied topics.

The prompt's embedding is computed once per request, off the event loop, and every rule of the
policy reuses it. Example embeddings are computed when a policy version is first used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from policies.loader import LoadedPolicy
from policies.store import PolicyStore

from ..base import ALLOW, Decision, GuardContext, Guardrail, Verdict
from ..request_shapes import latest_user_text
from .matcher import Encoder, RuleScore, TopicMatcher


class TopicGuardrail(Guardrail):
    name = "topics"
    read_only = True  # never rewrites the body: runs concurrently with the PII guardrail

    def __init__(self, store: PolicyStore, encoder_factory: Callable[[], Encoder]) -> None:
        self.store = store
        self._encoder_factory = encoder_factory
        self._encoder: Encoder | None = None
        self._matchers: dict[tuple[str, str], TopicMatcher] = {}
        self.prepare(store.policies)
        store.listeners.append(self.prepare)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = self._encoder_factory()
        return self._encoder

    def prepare(self, policies: dict[str, LoadedPolicy]) -> None:
        """Compile every policy's rules now (at start and on reload), not on a request."""
        live = set()
        for lp in policies.values():
            self.matcher(lp)
            live.add((lp.policy.name, lp.version))
        for k in [k for k in self._matchers if k not in live]:
            del self._matchers[k]

    def matcher(self, lp: LoadedPolicy) -> TopicMatcher:
        key = (lp.policy.name, lp.version)
        m = self._matchers.get(key)
        if m is None:
            t = lp.policy.topics
            semantic = any(r.examples for r in [*t.deny, *t.allow])
            m = self._matchers[key] = TopicMatcher(t, self.encoder if semantic else None)
        return m

    async def _scores(self, lp: LoadedPolicy, text: str, output: bool) -> list[RuleScore]:
        m = self.matcher(lp)
        if m.semantic and text.strip():  # encoder and classifier off the event loop, in one hop
            return await asyncio.to_thread(lambda: m.evaluate(text, m.vector(text), output))
        return m.evaluate(text, None, output)

    def _record(self, ctx: GuardContext, scores: list[RuleScore], where: str) -> RuleScore | None:
        for s in scores:
            if s.fired:
                action = "block" if s.mode == "enforce" else "monitor"
                ctx.decisions.append(
                    Decision(
                        "topics",
                        s.rule_id,
                        action,
                        s.score,
                        s.mode,  # type: ignore[arg-type]
                        {**s.as_detail(), "on": where},
                    )
                )
        return TopicMatcher.verdict(scores)

    async def scan_input(self, ctx: GuardContext, kind: str, body: dict[str, Any]) -> Verdict:
        lp = self.store.get(ctx.policy)
        topics = lp.policy.topics
        if topics.empty:
            return ALLOW
        text = latest_user_text(kind, body)  # type: ignore[arg-type]
        if not text.strip():
            return ALLOW
        hit = self._record(ctx, await self._scores(lp, text, False), "input")
        if hit is None:
            return ALLOW
        return Verdict(
            "refuse",
            hit.rule_id,
            f"Request refused by policy '{lp.policy.name}': rule {hit.rule_id} (score {hit.score:.2f})",
            "topic_blocked",
            topics.refusal.message,
            topics.refusal.style == "completion",
        )

    async def scan_output(self, ctx: GuardContext, text: str) -> Verdict:
        """For policies with `check_output`: refuse an answer on a denied topic."""
        lp = self.store.get(ctx.policy)
        topics = lp.policy.topics
        if not topics.check_output or not topics.deny or not text.strip():
            return ALLOW
        hit = self._record(ctx, await self._scores(lp, text, True), "output")
        if hit is None:
            return ALLOW
        return Verdict("refuse", hit.rule_id, "answer refused", "topic_blocked", topics.refusal.message, True)

    def wants_output_scan(self, ctx: GuardContext) -> bool:
        t = self.store.get(ctx.policy).policy.topics
        return t.check_output and bool(t.deny)
