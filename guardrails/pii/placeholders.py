"""Placeholder syntax, and restoring placeholders in whole and streamed answers.

Placeholders look like `<PERSON_1>`. Text the user typed that already looks like one is itself
masked (as `<LITERAL_n>`), so a placeholder in a prompt can only be one the gateway made, and a
typed look-alike comes back to its author exactly as typed.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from . import answer_ner  # a module, not its names: it imports this one

if TYPE_CHECKING:
    from .answer_ner import AnswerNer

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
#: A suffix of streamed text that could still grow into a placeholder.
_PARTIAL = re.compile(r"<[A-Z0-9_]*$")
MAX_PLACEHOLDER_LEN = 48


def restore_text(text: str, mapping: dict[str, str]) -> str:
    if "<" not in text:
        return text
    return PLACEHOLDER.sub(lambda m: mapping.get(m.group(), m.group()), text)


class StreamRestorer:
    """Restores placeholders in streamed text, holding back only a possible placeholder prefix.

    `scan` (optional) rewrites each released segment before restore, e.g. to redact PII the model
    invented; it must leave placeholders alone. `ner` (optional) also rewrites the names, places and
    addresses in it: asynchronously, so a stream's text waits in `buf` while one segment is analysed
    and the next segment takes all of it (see answer_ner.py); `aflush` and `atext` await it.
    """

    def __init__(
        self,
        mapping: dict[str, str],
        scan: Callable[[str], str] | None = None,
        hold: Callable[[str], int] | None = None,
        ner: AnswerNer | None = None,
    ) -> None:
        self.mapping = mapping
        self.scan = scan
        self.hold = hold
        self.ner = ner
        self.buf = ""
        self._pending: deque[asyncio.Future[str]] = deque()  # segments being analysed, in stream order
        self._context = ""  # the end of the text before the next segment: the analysis's left context

    def _split(self, text: str) -> int:
        cut = len(text)
        lt = text.rfind("<")
        if lt != -1 and len(text) - lt <= MAX_PLACEHOLDER_LEN and _PARTIAL.match(text, lt):
            cut = lt
        if self.hold is not None:
            cut = min(cut, self.hold(text[:cut]))
        if self.ner is not None:
            cut = answer_ner.hold_for_names(text, cut)
        return cut

    def _release(self, seg: str) -> str:
        if self.scan is not None and seg:
            seg = self.scan(seg)
        if self.ner is not None and seg:
            context, self._context = self._context, (self._context + seg)[-answer_ner.LEFT_CONTEXT_CHARS :]
            seg = self.ner.rewrite_sync(context, seg)
        return restore_text(seg, self.mapping)

    def text(self, value: str) -> str:
        return self._release(value)

    async def atext(self, value: str) -> str:
        if self.ner is None:
            return self._release(value)
        if self.scan is not None and value:
            value = self.scan(value)
        return restore_text(await self.ner.rewrite("", value), self.mapping)

    def feed(self, delta: str) -> str:
        self.buf += delta
        if self.ner is None:
            cut = self._split(self.buf)
            out, self.buf = self.buf[:cut], self.buf[cut:]
            return self._release(out)
        released = ""
        while self._pending and self._pending[0].done():  # analysed segments leave in order
            released += self._pending.popleft().result()
        # While segments are analysed, the stream collects the next one: a short one waits, a long one
        # (a fast backend) goes to another worker, up to answer_ner.MAX_IN_FLIGHT at a time.
        if self._pending and (
            len(self.buf) < answer_ner.SEGMENT_CHARS or len(self._pending) >= answer_ner.MAX_IN_FLIGHT
        ):
            return restore_text(released, self.mapping)
        cut = self._split(self.buf)
        seg, self.buf = self.buf[:cut], self.buf[cut:]
        if seg and self.scan is not None:
            seg = self.scan(seg)
        if not seg:
            return restore_text(released, self.mapping)
        context, self._context = self._context, (self._context + seg)[-answer_ner.LEFT_CONTEXT_CHARS :]
        if answer_ner.has_capital(seg):
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a script): analyse here
                released += self.ner.rewrite_sync(context, seg)
            else:
                self._pending.append(asyncio.ensure_future(self.ner.rewrite(context, seg)))
        elif self._pending:  # nothing to analyse, but it must not overtake the segments before it
            done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            done.set_result(seg)
            self._pending.append(done)
        else:
            released += seg
        return restore_text(released, self.mapping)

    def flush(self) -> str:
        if self._pending:
            raise RuntimeError("a segment is still being analysed: use aflush()")
        out, self.buf = self.buf, ""
        return self._release(out)

    async def aflush(self) -> str:
        released = ""
        seg, self.buf = self.buf, ""
        if seg and self.scan is not None:
            seg = self.scan(seg)
        last: Awaitable[str] | None = None
        if seg and self.ner is not None:  # analysed while the segments before it finish
            last = asyncio.ensure_future(self.ner.rewrite(self._context, seg))
            self._context = (self._context + seg)[-answer_ner.LEFT_CONTEXT_CHARS :]
        while self._pending:
            released += await self._pending.popleft()
        if last is not None:
            seg = await last
        return restore_text(released + seg, self.mapping)

    def close(self) -> None:
        """Cancel an analysis still running (the caller went away)."""
        while self._pending:
            self._pending.popleft().cancel()
