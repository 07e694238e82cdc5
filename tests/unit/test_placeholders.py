"""Streaming restore holds back only what could be a placeholder, and loses nothing."""

from __future__ import annotations

import random

from guardrails.pii.placeholders import StreamRestorer, restore_text
from guardrails.pii_guardrail import _hold_identifier_tail
from guardrails.pipeline import _Chain

MAPPING = {"<PERSON_1>": "Maria Gonzalez", "<EMAIL_ADDRESS_12>": "maria@example.com"}
MASKED = "Dear <PERSON_1>, we wrote to <EMAIL_ADDRESS_12> about <PERSON_9> and a < b <X>."
RESTORED = "Dear Maria Gonzalez, we wrote to maria@example.com about <PERSON_9> and a < b <X>."


def test_whole_text_restore_leaves_unknown_placeholders_alone():
    assert restore_text(MASKED, MAPPING) == RESTORED


def test_every_split_of_the_stream_restores_the_same_text():
    rng = random.Random(3)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(MASKED)), rng.randint(1, 20)))
        pieces = [MASKED[a:b] for a, b in zip([0, *cuts], [*cuts, len(MASKED)])]
        r = StreamRestorer(MAPPING)
        out = [r.feed(p) for p in pieces]
        assert "".join(out) + r.flush() == RESTORED
        prefixes = {ph[:k] for ph in MAPPING for k in range(2, len(ph))}
        for o in out:
            assert not any(ph in o for ph in MAPPING)  # never emitted unrestored
            assert not any(o.endswith(p) for p in prefixes)  # never emitted half a placeholder


def test_only_a_possible_placeholder_prefix_is_held_back():
    r = StreamRestorer(MAPPING)
    assert r.feed("Hello wor") == "Hello wor"
    assert r.feed("ld <PERS") == "ld "
    assert r.feed("ON_1> ok") == "Maria Gonzalez ok"
    assert r.feed("a <b>") == "a <b>"  # lower-case: cannot be a placeholder


def test_identifier_tail_is_held_until_complete():
    assert "card 4111 1111 11"[: _hold_identifier_tail("card 4111 1111 11")] == "card "
    assert _hold_identifier_tail("plain words here ") == len("plain words here ")


def test_chain_flush_passes_earlier_releases_through_later_filters():
    upper = StreamRestorer({"<A_1>": "<B_1>"})
    lower = StreamRestorer({"<B_1>": "done"})
    chain = _Chain([upper, lower])
    assert chain.feed("x <A_") == "x "
    assert chain.flush() == "<A_"
    chain2 = _Chain([StreamRestorer({"<A_1>": "<B_1>"}), StreamRestorer({"<B_1>": "done"})])
    assert chain2.feed("x <A_1") + chain2.feed(">") + chain2.flush() == "x done"


def test_a_name_at_the_end_of_a_streamed_chunk_is_held_until_it_is_complete():
    from guardrails.pii_guardrail import _hold_identifier_tail, _hold_name_and_identifier_tail

    text = "ask Zsófia"
    assert text[: _hold_name_and_identifier_tail(text)] == "ask "
    text = "ask Zsófia Kertész about it"
    assert text[: _hold_name_and_identifier_tail(text)] == "ask Zsófia Kertész about "
    plain = "call Zsófia Kertész"
    assert plain[: _hold_identifier_tail(plain)] == "call Zsófia "  # without name scanning only the last word waits
