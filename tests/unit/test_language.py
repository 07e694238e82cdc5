"""Language detection for PII analysis (guardrails/pii/language.py): the right recognizers for each
text, English whenever the text gives too little to go on."""

from __future__ import annotations

import pytest

from guardrails.pii import language
from guardrails.pii.language import DEFAULT_LANGUAGE, detect_language, fasttext_probabilities

SAMPLES = {
    "fr": "Bonjour, je n'arrive plus à me connecter à mon compte depuis hier, pouvez-vous m'aider ?",
    "de": "Guten Tag, seit gestern komme ich nicht mehr in mein Konto. Können Sie mir bitte helfen?",
    "es": "Hola, desde ayer no puedo entrar en mi cuenta. ¿Me pueden ayudar, por favor?",
    "it": "Buongiorno, da ieri non riesco più ad accedere al mio account. Potete aiutarmi?",
    "en": "Hello, since yesterday I can't log into my account any more. Could you help me, please?",
}


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_support_message_gets_its_language(lang: str) -> None:
    assert detect_language(SAMPLES[lang]) == lang


@pytest.mark.parametrize(
    "lang,text",
    [
        ("fr", "Livraison au 118 chemin des Vignes à Avignon, merci"),
        ("de", "Lieferung bitte an die neue Anschrift in Leipzig"),
        ("es", "Enviar el paquete a la dirección nueva de Barcelona"),
        ("it", "Spedire il pacco al nuovo indirizzo di Parma, grazie"),
    ],
)
def test_short_message_without_many_function_words_gets_its_language(lang: str, text: str) -> None:
    assert detect_language(text) == lang


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "4111 1111 1111 1111",
        "def parse(self, raw: bytes) -> dict[str, int]:\n    return json.loads(raw)",
        "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\nKeyError: 'id'",
        "Maria Gonzalez",
        "The address of Les Nouveaux Constructeurs is 12 Rue de la Paix, Paris.",
    ],
)
def test_text_with_too_little_evidence_is_english(text: str) -> None:
    assert detect_language(text) == DEFAULT_LANGUAGE


def test_plain_english_is_settled_without_fasttext(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(_text: str) -> dict[str, float]:
        raise AssertionError("fastText was asked about plain English prose")

    monkeypatch.setattr(language, "fasttext_probabilities", fail)
    assert detect_language(SAMPLES["en"]) == "en"
    with pytest.raises(AssertionError):
        detect_language(SAMPLES["de"])


def test_only_the_engines_languages_are_answered() -> None:
    assert detect_language(SAMPLES["fr"], languages=("en", "de")) == DEFAULT_LANGUAGE
    assert detect_language(SAMPLES["de"], languages=("en", "de")) == "de"


def test_only_the_opening_of_a_long_text_is_read() -> None:
    text = SAMPLES["en"] * 5 + SAMPLES["fr"] * 50
    assert len(SAMPLES["en"] * 5) > language.SAMPLE_CHARS
    assert detect_language(text) == "en"
    assert detect_language(SAMPLES["fr"] * 50 + SAMPLES["en"] * 50) == "fr"


def test_fasttext_model_comes_from_the_installed_wheel() -> None:
    path = language.model_path()
    assert path.is_file() and path.stat().st_size > 500_000  # shipped in the wheel, nothing downloaded
    probs = fasttext_probabilities("Ich wohne seit zwei Jahren in Gelsenkirchen\nund mein Router fällt aus.")
    assert max(probs, key=lambda k: probs[k]) == "de"
