"""The answer's names: a streamed name is analysed whole and with context, segments batch while one
is analysed, placeholders are restored, and a failed analysis hides capitalised words (fails closed).

The analyzer here is a stand-in (a fixed list of names found by position) so that the streaming
logic is tested on its own; tests/integration/test_pii.py runs the real analyzer end to end."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from guardrails.pii.answer_ner import AnswerNer, hold_for_names
from guardrails.pii.placeholders import StreamRestorer
from guardrails.pii.structure import Span

NAMES = ["Zsófia Kertész", "Paris Hilton"]
MAPPING = {"<PERSON_1>": "Maria Gonzalez"}
ANSWER = "Dear <PERSON_1>, ask Zsófia Kertész in Paris or Paris Hilton. the rest is lowercase and plain."
EXPECTED = "Dear Maria Gonzalez, ask [REDACTED:PERSON] in Paris or [REDACTED:PERSON]. the rest is lowercase and plain."


class FakeAnalyzer:
    """Finds NAMES only when they are whole in the analysed text, as NER needs them; records calls."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.delay = delay
        self.fail = fail

    def sync(self, text: str) -> list[Span]:
        self.calls.append(text)
        if self.fail:
            raise RuntimeError("analyzer down")
        return [Span(m.start(), m.end(), "PERSON", 0.85) for n in NAMES for m in re.finditer(re.escape(n), text)]

    async def run(self, text: str) -> list[Span]:
        await asyncio.sleep(self.delay)
        return self.sync(text)


def _ner(a: FakeAnalyzer) -> AnswerNer:
    return AnswerNer(a.run, a.sync, lambda s, v: True, lambda e: f"[REDACTED:{e}]", lambda s: None)


def _stream(restorer: StreamRestorer, pieces: list[str], gap: float = 0.0) -> tuple[list[str], str]:
    async def go() -> tuple[list[str], str]:
        out = []
        for p in pieces:
            out.append(restorer.feed(p))
            await asyncio.sleep(gap)
        return out, await restorer.aflush()

    return asyncio.run(go())


def test_a_name_split_over_chunks_is_found_whole_for_every_split():
    rng = random.Random(5)
    for _ in range(60):
        cuts = sorted(rng.sample(range(1, len(ANSWER)), rng.randint(3, 30)))
        pieces = [ANSWER[a:b] for a, b in zip([0, *cuts], [*cuts, len(ANSWER)])]
        out, rest = _stream(StreamRestorer(MAPPING, ner=_ner(FakeAnalyzer())), pieces, gap=0.001)
        assert "".join(out) + rest == EXPECTED
        assert not any("Zsófia" in o or "Kertész" in o or "Hilton" in o for o in out)


def test_whole_answer_is_analysed_once():
    a = FakeAnalyzer()
    assert asyncio.run(StreamRestorer(MAPPING, ner=_ner(a)).atext(ANSWER)) == EXPECTED
    assert len(a.calls) == 1  # short: one analysis


def test_text_without_capitals_is_released_at_once_without_analysis():
    a = FakeAnalyzer()
    r = StreamRestorer({}, ner=_ner(a))

    async def go() -> list[str]:
        return [r.feed("all lower "), r.feed("case words "), r.feed("here ")]

    assert "".join(asyncio.run(go())) == "all lower case words here "
    assert a.calls == []


def test_a_fast_stream_is_analysed_in_few_segments():
    """While one segment is analysed, the stream collects the next: a burst of 200 chunks costs a
    handful of analyses, not one per chunk."""
    a = FakeAnalyzer(delay=0.01)
    text = " ".join(f"Word{i} and more" for i in range(200))
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
    out, rest = _stream(StreamRestorer({}, ner=_ner(a)), pieces, gap=0.0)
    assert "".join(out) + rest == text
    assert len(a.calls) <= 5


def test_each_segment_is_analysed_with_the_released_text_before_it():
    a = FakeAnalyzer()
    pieces = ["Hello there, friend of mine. ", "Then Paris ", "Hilton came ", "by today."]
    out, rest = _stream(StreamRestorer({}, ner=_ner(a)), pieces, gap=0.002)
    assert "".join(out) + rest == "Hello there, friend of mine. Then [REDACTED:PERSON] came by today."
    assert any(c.startswith("Hello there") and "Paris Hilton" in c for c in a.calls)


def test_failed_analysis_hides_capitalised_words_and_keeps_placeholders():
    r = StreamRestorer(MAPPING, ner=_ner(FakeAnalyzer(fail=True)))
    out = asyncio.run(r.atext("Ask Zsófia about <PERSON_1> today."))
    assert out == "[REDACTED:UNCHECKED] [REDACTED:UNCHECKED] about Maria Gonzalez today."


def test_sync_flush_refuses_while_a_segment_is_being_analysed():
    r = StreamRestorer({}, ner=_ner(FakeAnalyzer(delay=0.05)))

    async def go() -> None:
        r.feed("Ask Zsófia Kertész now please ")
        with pytest.raises(RuntimeError):
            r.flush()
        assert await r.aflush() == "Ask [REDACTED:PERSON] now please "

    asyncio.run(go())


def test_recorded_values_are_redacted_in_the_audit_copy():
    ner = _ner(FakeAnalyzer())
    asyncio.run(StreamRestorer({}, ner=ner).atext("Ask Zsófia Kertész."))
    assert ner.redact_recorded("raw: Ask Zsófia Kertész.") == "raw: Ask [REDACTED:PERSON]."


@pytest.mark.parametrize(
    ("text", "cut", "expected"),
    [
        ("ask Zsófia Kert", 11, 4),  # the name waits for right context
        ("ask Zsófia Kertész about the", 25, 4),  # one word after the name: still waiting
        ("ask Zsófia Kertész about the plan", 29, 29),  # two words after it: released
        ("all lower case text ", 20, 20),
        ("Dr. Smith said it", 15, 4),  # a word ending in a full stop ends the run (the analysis still sees it)
    ],
)
def test_hold_for_names(text: str, cut: int, expected: int):
    assert hold_for_names(text, cut) == expected
