"""The analyzer's own recognizers and false-positive filters, on the real Presidio engine."""
from __future__ import annotations

import pytest

from guardrails.pii.analyzer import PiiAnalyzer
from guardrails.pii.engine import build_analyzer


@pytest.fixture(scope="module")
def analyzer() -> PiiAnalyzer:
    return PiiAnalyzer(build_analyzer())


def found(analyzer: PiiAnalyzer, text: str, threshold: float = 0.3) -> set[tuple[str, str]]:
    return {(s.entity, text[s.start:s.end]) for s in analyzer.analyze_sync(text, None) if s.score >= threshold}


@pytest.mark.parametrize("text, value", [
    ("Ship it to Invalidenstrasse 19, Berlin.", "Invalidenstrasse 19"),
    ("Address: 933 Simavikveien 231, Moss", "933 Simavikveien 231"),
    ("Her flat is at Rue de Bouillon 316 in Brussels", "Rue de Bouillon 316"),
    ("He lives at 22 Pollen Crescent, Leeds", "22 Pollen Crescent"),
    ("Send it to Apt. 559 please", "Apt. 559"),
    ("PSC 5125, Box 6746\nAPO AP 05310", "PSC 5125, Box 6746"),
])
def test_street_addresses_in_several_national_formats(analyzer, text, value):
    assert ("STREET_ADDRESS", value) in found(analyzer, text)


@pytest.mark.parametrize("text, value", [
    ("call me on +447700556093 tomorrow", "+447700556093"),
    ("Phone:\n439 4166", "439 4166"),
    ("office 085 185 1604\n+41 36 659 05 15 fax", "085 185 1604"),
])
def test_phone_numbers_international_compact_and_local_with_context(analyzer, text, value):
    assert ("PHONE_NUMBER", value) in found(analyzer, text)


@pytest.mark.parametrize("text", [
    "Convert 1,250.75 EUR to USD at a rate of 1.08.",
    "The build 27849 failed at step 7 of 12: npm ERR! code ERESOLVE",
    "Upgrade the service from version 5.10.3 to 12.2.0 and list breaking changes.",
    "Explain the difference between TCP port 443 and port 8443 for the admin console.",
    "What does error code E66181 mean in the payment SDK?",
    "Order 123 was shipped in 3 boxes",
])
def test_code_numbers_and_versions_are_not_pii(analyzer, text):
    assert found(analyzer, text, threshold=0.5) == set()


@pytest.mark.parametrize("span, name", [("Helena Carlsen\n\n637", "Helena Carlsen"), ("637 Helena Carlsen", "Helena Carlsen"),
                                        ("Bob 12", "Bob"), ("12\n34", "")])
def test_a_name_run_into_the_next_line_or_a_house_number_is_trimmed_to_the_name(span, name):
    from guardrails.pii.analyzer import _trim_person
    text = "x " + span + " y"
    start, end = _trim_person(text, 2, 2 + len(span))
    assert text[start:end] == name


@pytest.mark.parametrize("text, name", [
    ("My name is Sigtryggur Bernharðsson and I need help", "Sigtryggur Bernharðsson"),
    ("Name:    Mehrudin M Thaler\nAddress: 990 Rue du Niger 87", "Mehrudin M Thaler"),
    ("Please follow up with Đurđa Jovanović next week.", "Đurđa Jovanović"),
    ("Pertti Palander\n\n083 Favoritenstrasse 36\nWien", "Pertti Palander"),
])
def test_names_after_cue_words_and_at_the_head_of_an_address_block(analyzer, text, name):
    assert ("PERSON", name) in found(analyzer, text)


def test_lines_after_a_street_line_are_part_of_the_address(analyzer):
    text = "Helena Carlsen\n637 Strojírenská 1006\n Suite 026\n Svratka\n Czech Republic 45098\n\nThanks for the help"
    spans = found(analyzer, text)
    assert ("LOCATION", "Svratka") in spans and ("LOCATION", "Czech Republic 45098") in spans
    assert not any("Thanks" in v for _, v in spans)


@pytest.mark.parametrize("text", ["Customer Service Team will answer soon.", "Dear customer, your order shipped."])
def test_cue_words_do_not_turn_ordinary_words_into_names(analyzer, text):
    assert not any(e == "PERSON" for e, _ in found(analyzer, text, threshold=0.5))
