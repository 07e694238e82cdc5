"""French, German, Spanish and Italian prompts through the real gateway (openai client → gateway →
stand-in, real Presidio and spaCy pipelines, real Redis): each message is analysed with its
language's recognizers, the backend never sees the values, the caller gets them back; English
text is analysed exactly as before languages were told apart."""

from __future__ import annotations

import json

import openai
import pytest

from procs import Gateway, Standin, gateway_config

MESSAGES = {
    "de": (
        "Hallo, mein Name ist Jörg Kowalczyk. Meine Steuer-ID ist 27536455686, erreichbar bin ich "
        "unter 0171 2345678 oder im Büro unter 040 / 389 12 77.",
        {"27536455686": "DE_TAX_ID", "0171 2345678": "PHONE_NUMBER", "040 / 389 12 77": "PHONE_NUMBER"},
    ),
    "it": (
        "Buongiorno, per la registrazione vi mando il mio codice fiscale RSSGPP71S02H501N. Grazie, Giuseppe Russo",
        {"RSSGPP71S02H501N": "IT_FISCAL_CODE", "Giuseppe Russo": "PERSON"},
    ),
    "fr": (
        "Bonjour, merci de livrer le colis à ma nouvelle adresse : 14 rue des Lilas, 69003 Lyon. "
        "Cordialement, Aminata Diallo",
        {"14 rue des Lilas": "STREET_ADDRESS", "69003 Lyon": "STREET_ADDRESS", "Aminata Diallo": "PERSON"},
    ),
    "es": (
        "Hola, para darme de alta necesitan mi DNI: 18629549D. Me llamo Guadalupe Ramírez y vivo en la "
        "Calle de Alcalá 145, 28009 Madrid.",
        {"18629549D": "ES_NIF", "Guadalupe Ramírez": "PERSON", "Calle de Alcalá 145": "STREET_ADDRESS"},
    ),
}


@pytest.fixture(scope="module")
def lang_gateway(redis_server):
    """A gateway (default policy) in front of a stand-in of its own, whatever the primary is: the
    assertions read what the backend received."""
    s = Standin()
    g = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"{s.url}/v1"},
            redis_url=redis_server.url,
            extra={"pii": {"long_text_processes": 0}},  # the default languages: fr, de, es, it
        ),
        env={"MIXGUARD_VAULT_KEY": "test-vault-passphrase"},
    )
    yield g, s
    g.stop()
    s.stop()


def _chat(g: Gateway, messages: list[dict]) -> str:
    client = openai.OpenAI(base_url=g.url + "/v1", api_key=Gateway.KEY, max_retries=0, timeout=120)
    return client.chat.completions.create(model="mixtral", messages=messages).choices[0].message.content or ""


@pytest.mark.parametrize("lang", sorted(MESSAGES))
def test_values_in_each_language_never_reach_the_backend_and_come_back(lang_gateway, lang: str) -> None:
    g, standin = lang_gateway
    text, values = MESSAGES[lang]
    answer = _chat(g, [{"role": "user", "content": text}])
    seen = json.dumps(standin.last_request(), ensure_ascii=False)
    for value, entity in values.items():
        assert value not in seen, f"{entity} {value!r} reached the backend"
        assert f"<{entity}_" in seen
    assert answer == text  # the stand-in echoes the masked text; the gateway restores every value


def test_language_is_detected_per_message(lang_gateway) -> None:
    """An English system prompt and a German user message in one request: each is analysed with
    its own language's recognizers."""
    g, standin = lang_gateway
    system = "You are the support assistant of Acme. Answer briefly and politely."
    user = "Bitte ändern Sie meine Lieferadresse auf Am Mühlbach 7a, 82031 Grünwald. Gruß, Svenja Hoffmann"
    _chat(g, [{"role": "system", "content": system}, {"role": "user", "content": user}])
    msgs = standin.last_request()["messages"]
    assert msgs[0]["content"] == system
    for value in ("Am Mühlbach 7a", "82031 Grünwald", "Svenja Hoffmann"):
        assert value not in msgs[1]["content"]


def test_structured_identifiers_are_masked_in_english_text_too(lang_gateway) -> None:
    g, standin = lang_gateway
    text = (
        "Order 27536455686 shipped yesterday. Please update the record: codice fiscale RSSGPP71S02H501N, "
        "Spanish DNI 45764479E, French social security number 2 68 02 59 350 903 94, Steuer-ID 95881399860."
    )
    _chat(g, [{"role": "user", "content": text}])
    seen = standin.last_request()["messages"][0]["content"]
    for value in ("RSSGPP71S02H501N", "45764479E", "2 68 02 59 350 903 94", "95881399860"):
        assert value not in seen
    # A German tax ID outside German text needs a word that names it: the order number stays.
    assert "Order 27536455686 shipped" in seen


@pytest.fixture(scope="module")
def engines():
    """The analyzer as the gateway builds it, and one built for English alone."""
    from guardrails.pii.analyzer import PiiAnalyzer
    from guardrails.pii.engine import build_analyzer

    return PiiAnalyzer(build_analyzer()), PiiAnalyzer(build_analyzer(languages=("en",)))


def test_english_text_is_analysed_exactly_as_by_an_english_only_engine(engines) -> None:
    """What English text got before languages were told apart, it gets now."""
    from guardrails.pii.language import detect_language
    from guardrails.pii_guardrail import DEFAULT_ENTITIES
    from procs import ROOT

    full, english = engines
    texts = [json.loads(x)["text"] for x in (ROOT / "tests/data/pii_heldout3.jsonl").read_text().splitlines()[:80]]
    texts += [json.loads(x)["text"] for x in (ROOT / "tests/data/clean_prompts.jsonl").read_text().splitlines()[:40]]
    english_texts = [t for t in texts if detect_language(t) == "en"]
    # Address blocks of French towns in an English set may read as French ("42 rue Marie de
    # Médicis … BEZONS France"): 4 of 1,350 English texts of tests/data did.
    assert len(english_texts) >= 0.98 * len(texts)
    for t in english_texts:
        assert sorted(full.analyze_sync(t, DEFAULT_ENTITIES), key=repr) == sorted(
            english.analyze_sync(t, DEFAULT_ENTITIES), key=repr
        ), t


def test_german_text_is_analysed_without_the_english_ner(engines) -> None:
    """The English model tags German nouns as people; German text runs a tokenizer and its own
    recognizers instead, so ordinary nouns stay."""
    from guardrails.pii_guardrail import DEFAULT_ENTITIES

    full, _ = engines
    text = "Für die Lohnabrechnung brauche ich Ihre Steuer-ID, meine ist 95881399860. Gruß Dragan Petrović"
    found = {text[s.start : s.end]: s.entity for s in full.analyze_sync(text, DEFAULT_ENTITIES) if s.score >= 0.5}
    assert found.get("95881399860") == "DE_TAX_ID"
    assert found.get("Dragan Petrović") == "PERSON"
    assert not any("Lohnabrechnung" in v or "Steuer" in v for v in found)
