"""Names, places and addresses the model writes in its answer: found by the same analyzer (spaCy NER,
gazetteers, cue words) that masks prompts, and replaced per the policy's `output_action`.

A whole answer is analysed once. A streamed answer is analysed in segments: text is released only
once each capitalised word in it has a little right context (NER needs "Paris Hilton" and "Paris
is" whole), a segment without a capital letter is released at once (spaCy's models tag no lowercase
word as a name), and while one segment is analysed (off the event loop, in the analyzer's workers)
the stream goes on collecting the next one, so a fast stream is analysed in a few large segments
and a slow one adds at most one segment's analysis after its last token.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from . import placeholders  # a module, not its names: placeholders imports this one
from .structure import Span

#: Words of right context a capitalised word needs before it is analysed in a stream.
RIGHT_CONTEXT_WORDS = 2
#: Left context (already released text) given to the analyzer with each streamed segment.
LEFT_CONTEXT_CHARS = 160
#: While a segment is analysed, a stream's next segment waits until it is this long (then it goes to
#: another worker), and at most MAX_IN_FLIGHT segments are analysed at once.
SEGMENT_CHARS = 600
MAX_IN_FLIGHT = 2
#: A capitalised run is held at most this long (a title-case list must not stall the stream).
MAX_HOLD_CHARS = 240

_WORD = re.compile(r"\S+")
_CAPITAL = re.compile(r"[A-ZÀ-ÖØ-Þ]")


def has_capital(text: str) -> bool:
    """Whether NER could find anything here: its models tag no lowercase word as a name."""
    return _CAPITAL.search(placeholders.PLACEHOLDER.sub("", text)) is not None


def hold_for_names(text: str, cut: int) -> int:
    """Where a stream may stop releasing, given `cut` (what the placeholder and identifier holds
    allow): before the first capitalised word among the last RIGHT_CONTEXT_WORDS complete words,
    and before the run of capitalised words and numbers that leads to it ("Zsófia Kertész said",
    "14 Harbour Lane": a house number is part of the address the analysis must see whole)."""
    floor = max(0, len(text) - MAX_HOLD_CHARS)
    words = list(_WORD.finditer(text, 0, cut))  # complete words: the one at `cut` may be unfinished
    tail = words[-RIGHT_CONTEXT_WORDS:]
    first = next((i for i, m in enumerate(tail) if _CAPITAL.match(m.group())), None)
    if first is not None:
        i = len(words) - len(tail) + first
    elif _CAPITAL.match(text, cut):  # the held text starts a name: what leads to it waits with it
        i = len(words)
    else:
        return cut
    while i > 0 and _leads_to_name(words[i - 1].group()):
        i -= 1
    return max(floor, words[i].start() if i < len(words) else cut)


def _leads_to_name(word: str) -> bool:
    """A capitalised word or a short number that does not end a sentence or a clause."""
    if word.endswith((".", "!", "?", ":", ";", ",")):
        return False
    return _CAPITAL.match(word) is not None or (len(word) <= 6 and any(c.isdigit() for c in word))


@dataclass
class AnswerNer:
    """Finds the policy's name-like entities in answer text and rewrites them.

    `analyze(text)` returns spans of `text` (the analyzer with the policy's output entities, in a
    worker); `keep(span, value)` says whether a span is to be replaced (threshold, allow list);
    `replacement(entity)` gives its replacement. Replaced values are remembered (in memory, for
    this request) so the audit record of the raw answer can be redacted alike.
    """

    analyze: Callable[[str], Awaitable[list[Span]]]
    analyze_sync: Callable[[str], list[Span]]
    keep: Callable[[Span, str], bool]
    replacement: Callable[[str], str]
    on_replace: Callable[[Span], None]
    replaced: dict[str, str] = field(default_factory=dict)

    async def rewrite(self, context: str, segment: str) -> str:
        """`segment` with its entities replaced; `context` (released text before it) is analysed
        with it but never changed."""
        if not has_capital(segment):
            return segment
        try:
            spans = await self.analyze(context + segment)
        except Exception:  # fail closed: an answer that cannot be checked loses its capitalised words
            return self._unchecked(segment)
        return self._apply(context, segment, spans)

    def rewrite_sync(self, context: str, segment: str) -> str:
        if not has_capital(segment):
            return segment
        try:
            spans = self.analyze_sync(context + segment)
        except Exception:
            return self._unchecked(segment)
        return self._apply(context, segment, spans)

    def _apply(self, context: str, segment: str, spans: list[Span]) -> str:
        text = context + segment
        chosen: list[Span] = []
        for s in sorted(spans, key=lambda s: (s.start, -s.end)):
            if s.end <= len(context) or (chosen and s.start < chosen[-1].end):
                continue
            s = Span(max(s.start, len(context)), s.end, s.entity, s.score)
            if self.keep(s, text[s.start : s.end]) and not placeholders.PLACEHOLDER.search(text[s.start : s.end]):
                chosen.append(s)
        out = segment
        for s in reversed(chosen):
            a, b = s.start - len(context), s.end - len(context)
            self.replaced[out[a:b]] = s.entity
            self.on_replace(s)
            out = out[:a] + self.replacement(s.entity) + out[b:]
        return out

    def _unchecked(self, segment: str) -> str:
        def hide(m: re.Match[str]) -> str:
            word = m.group()
            if placeholders.PLACEHOLDER.fullmatch(word) or not _CAPITAL.match(word):
                return word
            self.replaced[word] = "UNCHECKED"
            return self.replacement("UNCHECKED")

        return _WORD.sub(hide, segment)

    def redact_recorded(self, text: str) -> str:
        """The raw answer for the audit record, with every value replaced in the answer redacted."""
        for value in sorted(self.replaced, key=len, reverse=True):
            if value.strip():
                text = text.replace(value, f"[REDACTED:{self.replaced[value]}]")
        return text
