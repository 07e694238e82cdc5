"""Placeholder syntax, and restoring placeholders in whole and streamed answers.

Placeholders look like `<PERSON_1>`. Text the user typed that already looks like one is itself
masked (as `<LITERAL_n>`), so a placeholder in a prompt can only be one the gateway made, and a
typed look-alike comes back to its author exactly as typed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
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
        self._pending: asyncio.Future[str] | None = None
        self._context = ""  # the end of what was released (scanned, before restore): NER's left context

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
            seg = self._accept(self.ner.rewrite_sync(self._context, seg))
        return restore_text(seg, self.mapping)

    def _accept(self, seg: str) -> str:
        self._context = (self._context + seg)[-answer_ner.LEFT_CONTEXT_CHARS :]
        return seg

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
        if self._pending is not None:
            if not self._pending.done():
                return ""  # the segment before is still being analysed: this text joins the next one
            released = self._accept(self._pending.result())
            self._pending = None
        cut = self._split(self.buf)
        seg, self.buf = self.buf[:cut], self.buf[cut:]
        if seg and self.scan is not None:
            seg = self.scan(seg)
        if seg and answer_ner.has_capital(seg):
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a script): analyse here
                released += self._accept(self.ner.rewrite_sync(self._context, seg))
            else:
                self._pending = asyncio.ensure_future(self.ner.rewrite(self._context, seg))
        else:
            released += self._accept(seg)
        return restore_text(released, self.mapping)

    def flush(self) -> str:
        if self._pending is not None:
            raise RuntimeError("a segment is still being analysed: use aflush()")
        out, self.buf = self.buf, ""
        return self._release(out)

    async def aflush(self) -> str:
        released = ""
        if self._pending is not None:
            released = self._accept(await self._pending)
            self._pending = None
        seg, self.buf = self.buf, ""
        if seg and self.scan is not None:
            seg = self.scan(seg)
        if seg and self.ner is not None:
            seg = self._accept(await self.ner.rewrite(self._context, seg))
        return restore_text(released + seg, self.mapping)

    def close(self) -> None:
        """Cancel an analysis still running (the caller went away)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
