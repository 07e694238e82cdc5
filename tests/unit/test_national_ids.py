"""National identifiers and the country formats of languages.py, recognizer by recognizer (no spaCy
pipeline: the pattern recognizers run on text alone)."""

from __future__ import annotations

import pytest

from guardrails.pii.language_profiles import PROFILES
from guardrails.pii.languages import (
    CueNameRecognizer,
    CuePlaceRecognizer,
    PostcodeTownRecognizer,
    slash_phone_recognizer,
    street_recognizer,
)
from guardrails.pii.national_ids import FrNirRecognizer, national_id_recognizers


def _found(recognizer, text: str, entity: str, min_score: float = 0.5) -> list[str]:
    return [text[r.start : r.end] for r in recognizer.analyze(text, [entity], None) if r.score >= min_score]


@pytest.mark.parametrize(
    "nir",
    [
        "1 84 03 75 112 047 53",
        "2 91 11 69 383 212 94",
        "1 77 06 2A 004 018 84",
        "180096748230072",
        "2.68.02.59.350.903.94",
    ],
)
def test_french_nir_with_a_valid_key_is_found(nir: str) -> None:
    assert _found(FrNirRecognizer(), f"Mon numéro de sécu : {nir}.", "FR_NIR") == [nir]


@pytest.mark.parametrize("nir", ["1 84 03 75 112 047 54", "180096748230073", "1 77 06 2B 004 018 84"])
def test_french_nir_with_a_wrong_key_is_not(nir: str) -> None:
    assert _found(FrNirRecognizer(), f"NIR {nir}", "FR_NIR") == []


def _by_entity(language: str, entity: str):
    return next(r for r in national_id_recognizers(language) if entity in r.supported_entities)


@pytest.mark.parametrize(
    "language,entity,value",
    [
        ("it", "IT_FISCAL_CODE", "RSSGPP71S02H501N"),
        ("en", "IT_FISCAL_CODE", "RSSGPP71S02H501N"),
        ("es", "ES_NIF", "18629549D"),
        ("fr", "ES_NIF", "18629549D"),
        ("es", "ES_NIE", "Y1235427L"),
        ("en", "FR_NIR", "2 68 02 59 350 903 94"),
    ],
)
def test_strong_identifiers_are_found_in_every_language(language: str, entity: str, value: str) -> None:
    assert _found(_by_entity(language, entity), f"ref {value} ok", entity) == [value]


@pytest.mark.parametrize("entity,value", [("DE_TAX_ID", "27536455686"), ("DE_ID_CARD", "NCFJ32X81")])
def test_weak_german_identifiers_count_alone_only_in_german(entity: str, value: str) -> None:
    text = f"Referenz {value} erhalten"
    assert _found(_by_entity("de", entity), text, entity) == [value]
    # Elsewhere the checksum alone leaves them under every threshold: a context word must lift them.
    assert _found(_by_entity("en", entity), f"order {value} shipped", entity, min_score=0.3) == []
    assert _found(_by_entity("en", entity), f"order {value} shipped", entity, min_score=0.0) == [value]


def test_weak_identifier_with_a_failing_checksum_is_rejected_everywhere() -> None:
    assert _found(_by_entity("de", "DE_TAX_ID"), "Steuer-ID 27536455687", "DE_TAX_ID", 0.0) == []
    assert _found(_by_entity("en", "DE_TAX_ID"), "Steuer-ID 27536455687", "DE_TAX_ID", 0.0) == []


@pytest.mark.parametrize(
    "language,text,street",
    [
        ("fr", "Nous avons déménagé au 3 bis avenue Jean Jaurès, à côté.", "3 bis avenue Jean Jaurès"),
        ("fr", "Adresse : 6, place du Marché", "6, place du Marché"),
        ("fr", "livrer au 9 quai de la Fosse demain", "9 quai de la Fosse"),
        ("de", "neue Anschrift: Am Mühlbach 7a, bitte", "Am Mühlbach 7a"),
        ("de", "Praxis in der Goethestr. 18, Frankfurt", "Goethestr. 18"),
        ("es", "en la consulta de C/ Gran Vía 38, Bilbao", "C/ Gran Vía 38"),
        ("es", "vivo en Calle de Alcalá 145, 3º B, Madrid", "Calle de Alcalá 145, 3º B"),
        ("es", "en la calle Real 54 de Ponferrada", "calle Real 54"),
        ("it", "abito in Corso Vittorio Emanuele II 88, Napoli", "Corso Vittorio Emanuele II 88"),
        ("it", "studio in Via dei Mille 41", "Via dei Mille 41"),
    ],
)
def test_street_formats_of_each_country(language: str, text: str, street: str) -> None:
    assert street in _found(street_recognizer(PROFILES[language]), text, "STREET_ADDRESS")


@pytest.mark.parametrize("text", ["Am Montag 12 Uhr", "la via 5 è chiusa", "rue 12", "Im Jahr 2020"])
def test_words_that_only_look_like_streets_are_not(text: str) -> None:
    lang = {"A": "de", "l": "it", "r": "fr", "I": "de"}[text[0]]
    assert _found(street_recognizer(PROFILES[lang]), text, "STREET_ADDRESS") == []


def test_postcode_and_town_but_not_an_amount() -> None:
    rec = PostcodeTownRecognizer("de")
    assert _found(rec, "Hauptstraße 112, 70173 Stuttgart: der Zähler", "STREET_ADDRESS") == ["70173 Stuttgart"]
    assert _found(rec, "Goethestr. 18, 60313 Frankfurt am Main.", "STREET_ADDRESS") == ["60313 Frankfurt am Main"]
    assert _found(rec, "Kosten, 10000 Euro im Jahr", "STREET_ADDRESS") == []


def test_german_phone_with_a_slash_after_the_area_code() -> None:
    rec = slash_phone_recognizer("de")
    assert _found(rec, "Festnetz 040 / 389 12 77, danke", "PHONE_NUMBER") == ["040 / 389 12 77"]
    assert _found(rec, "Seite 3/4 und 12/2024", "PHONE_NUMBER") == []


@pytest.mark.parametrize(
    "language,text,name",
    [
        ("fr", "Bonjour, je m'appelle Aminata Diallo et je", "Aminata Diallo"),
        ("de", "Bitte kontaktieren Sie Frau Katarzyna Zielińska unter", "Katarzyna Zielińska"),
        ("de", "Mit freundlichen Grüßen, Friederike von Bülow", "Friederike von Bülow"),
        ("es", "Hola Sergio, como hablamos", "Sergio"),
        ("it", "Cordiali saluti, Salvatore Lo Giudice", "Salvatore Lo Giudice"),
    ],
)
def test_names_after_a_languages_cue_words(language: str, text: str, name: str) -> None:
    assert name in _found(CueNameRecognizer(PROFILES[language]), text, "PERSON")


def test_a_cue_before_a_common_word_is_no_name() -> None:
    assert _found(CueNameRecognizer(PROFILES["de"]), "Hallo Kunde, Ihre Frau", "PERSON") == []


@pytest.mark.parametrize(
    "language,text,place",
    [
        ("fr", "Je vis à Roubaix depuis deux ans", "Roubaix"),
        ("de", "Ich wohne seit Jahren und wohne in Gelsenkirchen.", "Gelsenkirchen"),
        ("es", "Vivo en Cuenca desde hace dos años", "Cuenca"),
        ("it", "nato a Lecce, nome", "Lecce"),
    ],
)
def test_towns_after_a_languages_cue_words(language: str, text: str, place: str) -> None:
    assert _found(CuePlaceRecognizer(PROFILES[language]), text, "LOCATION") == [place]
