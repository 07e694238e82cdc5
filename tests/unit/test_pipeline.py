"""The guardrail protocol: typed verdicts, the order they win in, and the route stage."""

from __future__ import annotations

import asyncio
from typing import Any

from guardrails.base import ALLOW, GuardContext, Guardrail, Verdict
from guardrails.pipeline import Pipeline


def ctx() -> GuardContext:
    return GuardContext(key_id="k", app="a", policy="default", request_id="r1")


class Masker(Guardrail):
    name = "masker"

    def __init__(self, verdict: Verdict = ALLOW) -> None:
        self.verdict = verdict
        self.seen: list[str] = []

    async def scan_input(self, ctx: GuardContext, kind: str, body: dict[str, Any]) -> Verdict:
        self.seen.append(body["messages"][0]["content"])
        await asyncio.sleep(0.01)
        body["messages"][0]["content"] = "<MASKED>"
        return self.verdict


class Reader(Guardrail):
    name = "reader"
    read_only = True

    def __init__(self, verdict: Verdict = ALLOW, delay: float = 0.0) -> None:
        self.verdict, self.delay = verdict, delay
        self.seen: list[str] = []
        self.cancelled = False

    async def scan_input(self, ctx: GuardContext, kind: str, body: dict[str, Any]) -> Verdict:
        self.seen.append(body["messages"][0]["content"])  # before its first await: the body as sent
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return self.verdict


class Router(Guardrail):
    name = "route"

    def routes_checked(self, ctx: GuardContext) -> bool:
        return True

    def scan_route(
        self, ctx: GuardContext, backend_id: str, hosted: bool, body: dict[str, Any]
    ) -> tuple[Verdict, dict[str, Any]]:
        if hosted and backend_id == "refused":
            return Verdict("block", "route.x", "no", "residency_refused"), body
        return ALLOW, {**body, "for": backend_id} if hosted else body


def body() -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "raw"}]}


def test_readers_see_the_body_before_the_writers_rewrite_it_and_all_run():
    reader, masker = Reader(), Masker()
    b = body()
    verdict = asyncio.run(Pipeline([reader, masker]).check_input(ctx(), "chat", b))
    assert verdict is ALLOW
    assert reader.seen == ["raw"] and masker.seen == ["raw"]
    assert b["messages"][0]["content"] == "<MASKED>"


def test_a_refusal_wins_and_cancels_the_slower_checks():
    refuse = Verdict("refuse", "topic.x", "refused", "topic_blocked", "Sorry.", True)
    slow = Reader(delay=5)
    verdict = asyncio.run(Pipeline([Reader(refuse), slow, Masker()]).check_input(ctx(), "chat", body()))
    assert verdict == refuse
    assert slow.cancelled


def test_verdicts_win_in_guardrail_order_not_finishing_order():
    first = Verdict("block", "a", "a", "pii_blocked")
    second = Verdict("refuse", "b", "b", "topic_blocked", "no", True)
    # the second reader finishes first; the first guardrail's verdict still wins
    verdict = asyncio.run(
        Pipeline([Reader(first, delay=0.05), Reader(second), Masker()]).check_input(ctx(), "chat", body())
    )
    assert verdict == first


def test_guardrails_without_an_input_stage_are_not_run():
    class OnlyRoutes(Router):
        read_only = True

    p = Pipeline([OnlyRoutes()])
    assert asyncio.run(p.check_input(ctx(), "chat", body())) is ALLOW


def test_the_route_stage_rewrites_per_deployment_or_refuses():
    p = Pipeline([Masker(), Router()])
    c = ctx()
    assert p.checks_routes(c)
    v, out = p.check_route(c, "local", False, body())
    assert v is ALLOW and "for" not in out
    v, out = p.check_route(c, "hosted-1", True, body())
    assert v is ALLOW and out["for"] == "hosted-1"
    v, _ = p.check_route(c, "refused", True, body())
    assert v.action == "block" and v.code == "residency_refused"
    assert not Pipeline([Masker()]).checks_routes(c)
