"""Runs the configured guardrails in order on the request, and their output filters on the answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from .base import ALLOW, GuardContext, Guardrail, OutputFilter, Verdict


class _Chain:
    """Output filters applied in reverse order of the input steps (last masker restores first)."""

    def __init__(self, filters: list[OutputFilter]) -> None:
        self.filters = filters

    def text(self, value: str) -> str:
        for f in self.filters:
            value = f.text(value)
        return value

    def feed(self, delta: str) -> str:
        for f in self.filters:
            delta = f.feed(delta)
        return delta

    def flush(self) -> str:
        carry = ""
        for f in self.filters:  # what earlier filters release still passes through the later ones
            carry = (f.feed(carry) if carry else "") + f.flush()
        return carry

    async def atext(self, value: str) -> str:
        """As text(), for filters that analyse off the event loop (the answer's names)."""
        for f in self.filters:
            value = await f.atext(value) if hasattr(f, "atext") else f.text(value)
        return value

    async def aflush(self) -> str:
        carry = ""
        for f in self.filters:
            released = f.feed(carry) if carry else ""
            carry = released + (await f.aflush() if hasattr(f, "aflush") else f.flush())
        return carry

    def close(self) -> None:
        for f in self.filters:
            if hasattr(f, "close"):
                f.close()


class Pipeline:
    def __init__(self, guardrails: Iterable[Guardrail] = ()) -> None:
        self.guardrails = list(guardrails)

    def __bool__(self) -> bool:
        return bool(self.guardrails)

    def bind_redis(self, client: Any) -> None:
        for g in self.guardrails:
            g.bind_redis(client)

    def close(self) -> None:
        for g in self.guardrails:
            g.close()

    async def check_input(self, ctx: GuardContext, kind: str, body: dict[str, Any]) -> Verdict:
        """Run every guardrail on the request; the first verdict that is not allow wins. Read-only
        ones (topics) run concurrently with the rewriting ones (PII), so a request pays the slower of
        the two, not their sum; they read the body before their first await, i.e. before any
        rewrite. The verdict is the first refusal in guardrail order (a refusal waits only for the
        checks before it); the checks after it are cancelled."""
        scanning = [g for g in self.guardrails if type(g).scan_input is not Guardrail.scan_input]
        readers = [g for g in scanning if g.read_only]
        writers = [g for g in scanning if not g.read_only]
        if not readers or not writers:
            for g in scanning:
                verdict = await g.scan_input(ctx, kind, body)
                if not verdict.allowed:
                    return verdict
            return ALLOW
        tasks = [asyncio.ensure_future(g.scan_input(ctx, kind, body)) for g in readers]
        await asyncio.sleep(0)  # readers take their view of the body now

        async def rewrite() -> Verdict:
            for g in writers:
                verdict = await g.scan_input(ctx, kind, body)
                if not verdict.allowed:
                    return verdict
            return ALLOW

        tasks.append(asyncio.ensure_future(rewrite()))
        pending = set(tasks)
        try:
            while pending:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                # In guardrail order, so the same verdict wins whatever finishes first: the first
                # check that refused and has no unfinished check before it; later ones are cancelled.
                for t in tasks:
                    if not t.done():
                        break
                    if t.exception() is not None or not t.result().allowed:
                        return t.result()
            return ALLOW
        finally:
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def check_answer(self, ctx: GuardContext, text: str) -> Verdict:
        """Output rules on a whole answer: the first verdict that is not allow."""
        for g in self.guardrails:
            verdict = await g.scan_output(ctx, text)
            if not verdict.allowed:
                return verdict
        return ALLOW

    def checks_routes(self, ctx: GuardContext) -> bool:
        return any(g.routes_checked(ctx) for g in self.guardrails)

    def check_route(
        self, ctx: GuardContext, backend_id: str, hosted: bool, body: dict[str, Any]
    ) -> tuple[Verdict, dict[str, Any]]:
        """Every guardrail's route stage for one deployment: the first verdict that is not allow, or
        the body to send."""
        for g in self.guardrails:
            verdict, body = g.scan_route(ctx, backend_id, hosted, body)
            if not verdict.allowed:
                return verdict, body
        return ALLOW, body

    def answered(self, ctx: GuardContext, texts: list[str]) -> None:
        """The caller got these answers (as it will send them back in the next turn's history)."""
        for g in self.guardrails:
            g.answered(ctx, texts)

    def checks_answers(self, ctx: GuardContext) -> bool:
        return any(g.wants_output_scan(ctx) for g in self.guardrails)

    def audit_redactor(self, ctx: GuardContext) -> Callable[[str], str] | None:
        """Rewrites the model's raw answer for the audit record (e.g. invented PII redacted)."""
        fns = [f for g in self.guardrails if (f := g.audit_redactor(ctx)) is not None]
        if not fns:
            return None

        def redact(text: str) -> str:
            for f in fns:
                text = f(text)
            return text

        return redact

    def output_chain(self, ctx: GuardContext) -> _Chain | None:
        filters = [f for g in reversed(self.guardrails) if (f := g.output_filter(ctx)) is not None]
        return _Chain(filters) if filters else None

    @staticmethod
    async def apply_to_response(chain: _Chain | None, kind: str, data: dict[str, Any]) -> None:
        """Rewrite a non-streamed chat or text completion in place."""
        if chain is None:
            return
        for choice in data.get("choices") or []:
            if kind == "chat":
                msg = choice.get("message") or {}
                if isinstance(msg.get("content"), str):
                    msg["content"] = await chain.atext(msg["content"])
                for call in msg.get("tool_calls") or []:
                    fn = call.get("function") or {}
                    if isinstance(fn.get("arguments"), str):
                        fn["arguments"] = await chain.atext(fn["arguments"])
            elif isinstance(choice.get("text"), str):
                choice["text"] = await chain.atext(choice["text"])

    @staticmethod
    async def apply_to_stream(
        chain_factory: Any, kind: str, events: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        """Rewrite streamed chunks. Each choice's content and each tool call's arguments get their
        own filter chain, since a placeholder may be split across chunks in any of them.

        Held-back text is released into the chunk that carries the choice's finish_reason, so no
        text is lost and no new chunk shape is invented.
        """
        chains: dict[tuple[int, int], _Chain] = {}

        def chain_for(key: tuple[int, int]) -> _Chain:
            c = chains.get(key)
            if c is None:
                c = chains[key] = chain_factory()
            return c

        try:
            async for ev in events:
                for choice in ev.get("choices") or []:
                    idx = choice.get("index", 0)
                    if kind == "chat":
                        delta = choice.get("delta") or {}
                        if isinstance(delta.get("content"), str):
                            delta["content"] = chain_for((idx, -1)).feed(delta["content"])
                        for call in delta.get("tool_calls") or []:
                            fn = call.get("function") or {}
                            if isinstance(fn.get("arguments"), str):
                                fn["arguments"] = chain_for((idx, call.get("index", 0))).feed(fn["arguments"])
                        if choice.get("finish_reason"):
                            rest = await chains.pop((idx, -1)).aflush() if (idx, -1) in chains else ""
                            if rest:
                                delta["content"] = (delta.get("content") or "") + rest
                            for key in [k for k in chains if k[0] == idx]:
                                tail = await chains.pop(key).aflush()
                                if tail:
                                    delta.setdefault("tool_calls", []).append(
                                        {"index": key[1], "function": {"arguments": tail}}
                                    )
                            choice["delta"] = delta
                    else:
                        if isinstance(choice.get("text"), str):
                            choice["text"] = chain_for((idx, -1)).feed(choice["text"])
                        if choice.get("finish_reason") and (idx, -1) in chains:
                            choice["text"] = (choice.get("text") or "") + await chains.pop((idx, -1)).aflush()
                yield ev
        finally:
            for c in chains.values():  # the caller went away: no analysis runs on for it
                c.close()
