"""guardrails.pii.normalize: format characters removed, NFKC per character, exact offsets back."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.pii import normalize as normalize_module
from guardrails.pii.normalize import normalize

FORMAT_CHARS = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\u00ad",
    "\ufeff",
    "\u200e",
    "\u200f",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\U000e0041",
]  # tag LATIN CAPITAL LETTER A ("ASCII smuggling")


def reference(text: str) -> tuple[str, list[int]]:
    """The definition, one character at a time: (normalized text, source index of each character)."""
    out, src = [], []
    for i, ch in enumerate(text):
        r = "" if unicodedata.category(ch) == "Cf" else unicodedata.normalize("NFKC", ch)
        out.append(r)
        src += [i] * len(r)
    return "".join(out), src


def test_ascii_text_is_returned_as_is_with_the_identity_map(monkeypatch):
    class NoLookups(dict):
        def __missing__(self, key):
            raise AssertionError("ASCII text must not be looked at character by character")

    monkeypatch.setattr(normalize_module, "_MARKS", NoLookups())
    text = "Mail john.doe@example.com, card 4111 1111 1111 1111, SSN 536-22-1498."
    n = normalize(text)
    assert n.text is text and n.identity
    assert n.to_original(5, 25) == (5, 25)


def test_non_ascii_text_that_needs_no_change_keeps_the_identity_map():
    text = "Grüße an Zsófia Kertész und Đurđa Jovanović, Привет 请联系 🙂"
    n = normalize(text)
    assert n.text == text and n.identity


@pytest.mark.parametrize("ch", FORMAT_CHARS)
def test_each_format_character_is_removed_and_a_span_across_it_covers_it(ch):
    text = f"ssn 536-22{ch}-1498 ok"
    n = normalize(text)
    assert n.text == "ssn 536-22-1498 ok"
    start = n.text.index("536")
    assert n.to_original(start, start + len("536-22-1498")) == (4, 4 + 11 + len(ch))


def test_fullwidth_characters_become_ascii_one_for_one():
    text = "mail ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ or john﹫example․com, call ０２０ ７９４６ ０９５８"
    n = normalize(text)
    assert n.text == "mail john@example.com or john@example.com, call 020 7946 0958"
    assert n.identity  # substitutions only: offsets are the same
    start = n.text.index("john")
    assert n.to_original(start, start + 16) == (start, start + 16)


def test_removed_characters_inside_a_span_are_covered_and_those_at_its_edges_are_not():
    text = "to \u200b\u2060jo\u200bhn@ex\u00ad\u00adample.com\ufeff\u200b now"
    n = normalize(text)
    assert n.text == "to john@example.com now"
    start = n.text.index("john")
    a, b = n.to_original(start, start + len("john@example.com"))
    assert text[a:b] == "jo\u200bhn@ex\u00ad\u00adample.com"  # inside: covered; the edges' stay out
    assert text[:a] == "to \u200b\u2060" and text[b:] == "\ufeff\u200b now"


def test_format_characters_at_the_start_and_end_of_the_text():
    text = "\u200b\ufeffjohn@example.com\u200b"
    n = normalize(text)
    assert n.text == "john@example.com"
    assert n.to_original(0, len(n.text)) == (2, len(text) - 1)
    assert n.to_original(0, 0) == (2, 2)  # an empty span sits before the character it precedes
    assert n.to_original(len(n.text), len(n.text)) == (len(text), len(text))


def test_a_character_that_expands_is_covered_whole_by_any_part_of_its_expansion():
    text = "a ﬁle of ½ kg"
    n = normalize(text)
    assert n.text == "a file of 1⁄2 kg"
    i = n.text.index("fi")
    assert n.to_original(i, i + 1) == (2, 3)  # "f" alone: all of "ﬁ"
    assert n.to_original(i + 1, i + 2) == (2, 3)  # "i" alone: all of "ﬁ"
    assert n.to_original(i + 2, i + 4) == (3, 5)  # "le" after it: shifted back by one
    h = n.text.index("1⁄2")
    assert n.to_original(h + 1, h + 3) == (9, 10)  # "⁄2": all of "½"
    assert n.to_original(h + 3, len(n.text)) == (10, len(text))


def test_nul_in_the_text_is_kept():
    text = "a\x00b é"
    assert normalize(text).text == text and normalize(text).identity
    text = "a\x00b\u200bc"
    n = normalize(text)
    assert n.text == "a\x00bc" and n.to_original(0, 4) == (0, 5)


ALPHABET = st.sampled_from(
    [
        "a",
        "b",
        "1",
        "@",
        ".",
        " ",
        "-",
        "é",
        "ß",
        "Д",
        "中",
        "🙂",
        "e\u0301"[1],
        "＠",
        "．",
        "１",
        "Ａ",
        "ﬁ",
        "½",
        "㎏",
        "\u2126",
        "\u00a0",
        "\u3000",
        "\U0001d7cf",
        "\x00",
        *FORMAT_CHARS,
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join), st.data())
def test_offset_map_matches_the_per_character_definition(text, data):
    n = normalize(text)
    ref_text, src = reference(text)
    assert n.text == ref_text
    assert [n.original_index(i) for i in range(len(n.text))] == src
    if n.identity:
        assert src == list(range(len(text)))
    if n.text:
        start = data.draw(st.integers(0, len(n.text) - 1))
        end = data.draw(st.integers(start + 1, len(n.text)))
        a, b = n.to_original(start, end)
        assert (a, b) == (src[start], src[end - 1] + 1)
        # the original span normalizes to the normalized span (whole characters at the edges)
        covered, _ = reference(text[a:b])
        assert n.text[start:end] in covered
    assert normalize(n.text).text == n.text  # idempotent


def test_the_character_tables_stay_bounded_and_still_answer_when_full(monkeypatch):
    monkeypatch.setattr(normalize_module, "_TABLE_LIMIT", 0)
    sizes = len(normalize_module._MARKS), len(normalize_module._REPLACEMENTS)
    text = "\uff58\u200b\u00ff" + "".join(map(chr, range(0x4E00, 0x4E40))) + "\U0001d7d0"
    assert normalize(text).text == "x\u00ff" + text[3:-1] + "2"
    assert (len(normalize_module._MARKS), len(normalize_module._REPLACEMENTS)) == sizes
