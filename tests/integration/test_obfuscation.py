"""PII detection sees through obfuscation, on the real Presidio engine and spaCy model.

Zero-width and other format characters (and fullwidth or small "@", "." and digits) inside an
e-mail address, card, phone number, IBAN, SSN or IPv4 address are invisible to a reader and to a
model, yet broke every recognizer: the value reached the model raw, and a `block` rule was
bypassed. Each property inserts random ones into random valid values inside a sentence and checks
that the analyzer finds the value anyway, with a span in the ORIGINAL text's offsets that covers
the whole obfuscated value, so masking text[start:end] leaves none of its characters behind.
"""

from __future__ import annotations

import asyncio
import os
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails.pii.analyzer import PiiAnalyzer, engine_from_spec
from guardrails.pii.engine import DEFAULT_RECOGNIZERS, DEFAULT_SPACY_MODEL
from guardrails.pii.normalize import normalize
from guardrails.pii.structure import Span
from policies.store import PolicyStore

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("MIXGUARD_OBFUSCATION_EXAMPLES", "40"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPEC = (DEFAULT_SPACY_MODEL, sorted(DEFAULT_RECOGNIZERS), [])
ENTITIES = [
    "PERSON",
    "LOCATION",
    "NRP",
    "STREET_ADDRESS",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
]

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
    "\u180e",
]
LOOKALIKES = {
    "@": ["＠", "﹫"],
    ".": ["．", "﹒", "․"],
    **{d: [chr(0xFF10 + int(d)), chr(0x1D7CE + int(d))] for d in string.digits},
}  # fullwidth, math bold
POLICY = PolicyStore(ROOT / "policies").get("default").policy.pii


@pytest.fixture(scope="module")
def analyzer():
    # Texts over 1,500 characters go to two worker processes in chunks (the long-text path).
    a = PiiAnalyzer(engine_from_spec(SPEC), spec=SPEC, processes=2, long_text_chars=1500)
    yield a
    a.close()


def analyze(analyzer: PiiAnalyzer, text: str) -> list[Span]:
    return asyncio.run(analyzer.analyze_many([text], ENTITIES, timeout=120))[0]


# --- valid values -------------------------------------------------------------------------


def _luhn_complete(digits: str) -> str:
    for check in "0123456789":
        d = [int(c) for c in digits + check]
        if (sum(d[-1::-2]) + sum(sum(divmod(2 * x, 10)) for x in d[-2::-2])) % 10 == 0:
            return digits + check
    raise AssertionError


def _iban(country: str, bban: str) -> str:
    num = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(num) % 97:02d}{bban}"


def _grouped(s: str, sep: str, size: int = 4) -> str:
    return sep.join(s[i : i + size] for i in range(0, len(s), size))


emails = st.builds(
    "{}{}@{}".format,
    st.from_regex(r"[a-z]{2,10}", fullmatch=True),
    st.sampled_from(["", ".doe", "_smith", ".k"]),
    st.sampled_from(["example.com", "gmail.com", "mail.co.uk", "company.org", "uni-koeln.de"]),
)
cards = st.builds(
    lambda number, sep: _grouped(_luhn_complete(number), sep),
    st.sampled_from(["4", "51", "52", "55", "6011"]).flatmap(
        lambda p: st.text("0123456789", min_size=15 - len(p), max_size=15 - len(p)).map(p.__add__)
    ),
    st.sampled_from([" ", "-", ""]),
)
phones = st.one_of(
    st.builds(
        "({}) {}-{:04d}".format,
        st.sampled_from(["212", "415", "312", "617", "303"]),
        st.integers(201, 989).map(str),
        st.integers(0, 9999),
    ),
    st.builds(
        "+1 {} {} {:04d}".format,
        st.sampled_from(["212", "415", "312", "617", "303"]),
        st.integers(201, 989).map(str),
        st.integers(0, 9999),
    ),
    st.builds("+44 20 7946 {:04d}".format, st.integers(0, 999)),
    st.builds("+49 30 {:08d}".format, st.integers(10_000_000, 99_999_999)),
)
ibans = st.one_of(
    st.builds(lambda b: _iban("DE", b), st.text("0123456789", min_size=18, max_size=18)),
    st.builds(
        lambda bank, acct: _iban("GB", bank + acct),
        st.sampled_from(["WEST", "NWBK", "BARC"]),
        st.text("0123456789", min_size=14, max_size=14),
    ),
    st.builds(
        lambda bank, acct: _iban("NL", bank + acct),
        st.sampled_from(["ABNA", "RABO", "INGB"]),
        st.text("0123456789", min_size=10, max_size=10),
    ),
).flatmap(lambda iban: st.sampled_from([iban, _grouped(iban, " ")]))
ssns = st.builds(
    "{:03d}-{:02d}-{:04d}".format,
    st.integers(1, 899).filter(lambda a: a != 666),
    st.integers(1, 99),
    st.integers(1, 9999),
).filter(lambda s: len(set(s.replace("-", ""))) > 1 and s not in ("123-45-6789", "987-65-4320", "078-05-1120"))
ipv4s = st.builds(
    "{}.{}.{}.{}".format, st.integers(1, 223), st.integers(0, 255), st.integers(0, 255), st.integers(1, 254)
).filter(lambda s: not s.startswith("127."))  # loopback addresses identify no one: not masked (code_spans.py)

SENTENCES = {
    "EMAIL_ADDRESS": ["Please write to {} about the invoice.", "My e-mail is {} if you need it", "Contact: {}"],
    "CREDIT_CARD": ["Charge my card {} for the order.", "The credit card number is {}, expiry next year."],
    "PHONE_NUMBER": ["Call me on {} after lunch.", "My phone number is {} (mobile)."],
    "IBAN_CODE": ["Wire the refund to IBAN {} please.", "My bank account: {}."],
    "US_SSN": ["My SSN is {} and I need a tax form.", "Social security number: {}."],
    "IP_ADDRESS": ["The server at {} stopped answering.", "Block traffic from IP {} now."],
}
VALUES = {
    "EMAIL_ADDRESS": emails,
    "CREDIT_CARD": cards,
    "PHONE_NUMBER": phones,
    "IBAN_CODE": ibans,
    "US_SSN": ssns,
    "IP_ADDRESS": ipv4s,
}


@st.composite
def obfuscated(draw: st.DrawFn, value: str) -> str:
    """`value` with look-alike substitutions and format characters between its characters (at
    least one of either)."""
    chars = [draw(st.sampled_from([c, *LOOKALIKES[c]])) if c in LOOKALIKES else c for c in value]
    gaps = draw(st.lists(st.integers(1, len(value) - 1), min_size=1, max_size=5))
    for g in sorted(gaps, reverse=True):
        chars.insert(g, draw(st.text(st.sampled_from(FORMAT_CHARS), min_size=1, max_size=3)))
    return "".join(chars)


@st.composite
def sentences(draw: st.DrawFn, entity: str) -> tuple[str, int, int, str]:
    """(sentence, start, end, plain value): the obfuscated value is text[start:end], maybe with
    format characters just outside it too."""
    plain = draw(VALUES[entity])
    value = draw(obfuscated(plain))
    before, after = draw(st.sampled_from(SENTENCES[entity])).split("{}")
    before += draw(st.text(st.sampled_from(FORMAT_CHARS), max_size=2))
    return (
        before + value + draw(st.text(st.sampled_from(FORMAT_CHARS), max_size=2)) + after,
        len(before),
        len(before) + len(value),
        plain,
    )


def assert_masked(spans: list[Span], text: str, start: int, end: int, entity: str, plain: str) -> None:
    """A span of `entity`, over the policy's threshold, covers text[start:end]; masking it (as the
    guardrail does, on the original text) leaves no character of the value."""
    threshold = POLICY.rule(entity).threshold or 0
    covering = [s for s in spans if s.entity == entity and s.score >= threshold and s.start <= start and s.end >= end]
    assert covering, (
        f"{entity} {text[start:end]!r} ({plain}) not covered in {text!r}: "
        f"{[(s.entity, text[s.start : s.end], s.score) for s in spans]}"
    )
    s = covering[0]
    masked = text[: s.start] + f"<{entity}_1>" + text[s.end :]
    assert plain not in normalize(masked).text


def _property(entity: str):
    @PROPERTY
    @given(case=sentences(entity))
    def check(analyzer, case):
        text, start, end, plain = case
        assert_masked(analyze(analyzer, text), text, start, end, entity, plain)

    check.__name__ = f"test_obfuscated_{entity.lower()}_is_found_and_masked_whole"
    check.__doc__ = f"Obfuscated {entity} in a sentence: found, and its span covers every character."
    return check


test_obfuscated_email_address_is_found_and_masked_whole = _property("EMAIL_ADDRESS")
test_obfuscated_credit_card_is_found_and_masked_whole = _property("CREDIT_CARD")
test_obfuscated_phone_number_is_found_and_masked_whole = _property("PHONE_NUMBER")
test_obfuscated_iban_code_is_found_and_masked_whole = _property("IBAN_CODE")
test_obfuscated_us_ssn_is_found_and_masked_whole = _property("US_SSN")
test_obfuscated_ip_address_is_found_and_masked_whole = _property("IP_ADDRESS")


@PROPERTY
@given(entity=st.sampled_from(sorted(VALUES)), data=st.data())
def test_streamed_output_scan_finds_obfuscated_values(analyzer, entity, data):
    """structured_scan (regex recognizers on model output) sees through obfuscation too."""
    text, start, end, plain = data.draw(sentences(entity))
    assert_masked(analyzer.structured_scan(text, list(VALUES)), text, start, end, entity, plain)


def test_a_long_text_in_chunks_finds_obfuscated_values_and_values_padded_with_hidden_characters(analyzer):
    """The long-text path (worker processes, ~2,000-character chunks that overlap by 80) normalizes
    too, and before it cuts: a card padded with 300 zero-width spaces across the first cut of the
    raw text would be split there (chunks cut at spaces, and the padding is longer than the
    overlap); cut after normalizing, it is whole in the first chunk."""
    filler = "The quarterly numbers look fine and the team keeps shipping on schedule. "
    values = [
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("US_SSN", "536-22-1498"),
        ("IBAN_CODE", "GB82 WEST 1234 5698 7654 32"),
        ("EMAIL_ADDRESS", "alan.turing@example.org"),
        ("CREDIT_CARD", "5555-5555-5555-4444"),
        ("US_SSN", "219-45-3321"),
        ("IBAN_CODE", "DE89370400440532013000"),
        ("EMAIL_ADDRESS", "grace.hopper@example.com"),
    ]
    text, placed = (filler * 30)[:1983] + " ", []  # the card's padding covers raw offset 2,000
    for i, (entity, plain) in enumerate(values):  # then a value about every 1,000 characters
        if i:
            text += (filler * 14)[: 1000 * (i + 2) - len(normalize(text).text) - 10].rstrip() + " "
        text += "SSN " if entity == "US_SSN" else ""
        value = (
            plain[:5] + "\u200b" * 300 + plain[5:]
            if i % 2 == 0
            else "\u2060".join(plain).replace("@", "＠").replace(".", "．")
        )
        placed.append((entity, plain, len(text), len(text) + len(value)))
        text += value + " "
    text += filler * 3
    assert placed[0][2] < 2000 - 5 < 2000 + 80 < placed[0][3] and len(text) > 9_000
    spans = analyze(analyzer, text)
    for entity, plain, start, end in placed:
        assert_masked(spans, text, start, end, entity, plain)


def test_cached_answers_are_in_the_original_offsets(analyzer):
    text = "Mail jo\u200bhn.d\u2060oe＠example．com or call (212)\u200b 555-0143."
    first = analyze(analyzer, text)
    hits = analyzer.counts["memory"]
    second = analyze(analyzer, text)
    assert analyzer.counts["memory"] == hits + 1 and second == first
    start = text.index("jo")
    assert_masked(second, text, start, text.index(" or"), "EMAIL_ADDRESS", "john.doe@example.com")


# --- through the guardrail -----------------------------------------------------------------


class _FakeVault:
    """Placeholders without Redis (the vault's own tests cover it)."""

    _mac_key = b"k" * 32

    async def placeholders(self, key_id: str, conversation: str, items: list[tuple[str, str]]) -> list[str]:
        return [f"<{entity}_{i + 1}>" for i, (entity, _) in enumerate(items)]


def _scan_input(analyzer: PiiAnalyzer, content: str) -> tuple[Any, str]:
    """The default policy's verdict on a chat message, and the message as it would be forwarded."""
    from guardrails.base import GuardContext
    from guardrails.pii_guardrail import PiiGuardrail

    guard = PiiGuardrail(analyzer, _FakeVault(), PolicyStore(ROOT / "policies"))  # type: ignore[arg-type]
    body = {"messages": [{"role": "user", "content": content}]}
    verdict = asyncio.run(guard.scan_input(GuardContext("key", "app", "default", "req"), "chat", body))
    return verdict, body["messages"][0]["content"]


def test_a_blocked_ssn_with_a_zero_width_space_inside_is_still_blocked(analyzer):
    verdict, _ = _scan_input(analyzer, "My SSN is 536-22\u200b-1498, can you fill in the form?")
    assert (verdict.action, verdict.rule_id, verdict.code) == ("block", "pii.US_SSN", "pii_blocked")


def test_the_mask_lands_on_the_callers_text_and_swallows_the_hidden_characters(analyzer):
    verdict, out = _scan_input(analyzer, "Write to ma\u200bria\u2060＠example．com or call +44\u00ad 20 7946 0958.")
    assert verdict.allowed
    assert out == "Write to <EMAIL_ADDRESS_1> or call <PHONE_NUMBER_2>."
