"""National identifiers of France, Germany, Spain and Italy, each checked by its checksum.

Presidio ships the German, Spanish and Italian ones (`DeTaxIdRecognizer`, `DeIdCardRecognizer`,
`EsNifRecognizer`, `EsNieRecognizer`, `ItFiscalCodeRecognizer`); France's social security number
(NIR) is added here with its mod-97 key. Structured identifiers are masked whatever the language
of the text around them (a codice fiscale pasted into an English ticket is still one), so:

* identifiers whose format and checksum rarely fit a random token (NIR: 15 digits and a mod-97
  key; NIF/NIE: 8 digits and a check letter; codice fiscale: a 16-character structure and a check
  letter) are recognized in every language;
* the German tax ID (any 11 digits whose last is a mod-11 check: one random number in ten) and
  identity card number (nine letters and digits with a mod-10 check) are recognized in German
  text, and elsewhere only after a word that names them ("Steuer-ID", "Ausweis").
"""

from __future__ import annotations

import copy
import re
from typing import Any

from presidio_analyzer import Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import (
    DeIdCardRecognizer,
    DeTaxIdRecognizer,
    EsNieRecognizer,
    EsNifRecognizer,
    ItFiscalCodeRecognizer,
)

#: Entity types of the national identifiers (the PII guardrail asks for them by default).
NATIONAL_ID_ENTITIES = ("FR_NIR", "DE_TAX_ID", "DE_ID_CARD", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE")

#: Score of a weak identifier outside its language before context: below every default
#: threshold, raised over them by one context word (Presidio adds 0.35).
_NEEDS_CONTEXT_SCORE = 0.2


class FrNirRecognizer(PatternRecognizer):
    """France's numéro d'inscription au répertoire (sécurité sociale): sex, year, month,
    département (2A/2B for Corsica), commune, order number and a two-digit key, 97 minus the
    first 13 digits modulo 97. Written with or without spaces ("1 84 03 75 112 047 53")."""

    def __init__(self, supported_language: str = "fr") -> None:
        sep = r"[ .]?"
        super().__init__(
            supported_entity="FR_NIR",
            name="FrNirRecognizer",
            supported_language=supported_language,
            patterns=[
                Pattern(
                    "nir",
                    rf"\b[1-478](?:{sep}\d){{4}}{sep}(?:\d{sep}\d|2[AB])(?:{sep}\d){{6}}{sep}\d{sep}\d\b",
                    0.5,
                )
            ],
            context=["sécurité", "securite", "sécu", "secu", "nir", "insee", "vitale", "social", "assuré"],
        )

    def validate_result(self, pattern_text: str) -> bool:
        s = re.sub(r"[ .]", "", pattern_text).upper()
        if len(s) != 15:
            return False
        body = s[:5] + {"2A": "19", "2B": "18"}.get(s[5:7], s[5:7]) + s[7:13]
        return body.isdigit() and s[13:].isdigit() and 97 - int(body) % 97 == int(s[13:])


def needs_context(recognizer: PatternRecognizer, language: str) -> PatternRecognizer:
    """A copy of `recognizer` for `language` that counts only with a context word: its patterns
    score _NEEDS_CONTEXT_SCORE and a passing checksum no longer lifts them to 1.0."""
    src: Any = recognizer  # Presidio's attributes are untyped
    weak: Any = copy.copy(src)
    weak.supported_language = language
    weak.patterns = [Pattern(p.name, p.regex, _NEEDS_CONTEXT_SCORE) for p in src.patterns]
    check = src.validate_result
    weak.validate_result = lambda text: None if check(text) else False
    return weak  # type: ignore[no-any-return]


def national_id_recognizers(language: str) -> list[PatternRecognizer]:
    """The national identifier recognizers that run on text in `language`."""
    strong: list[PatternRecognizer] = [
        FrNirRecognizer(supported_language=language),
        EsNifRecognizer(supported_language=language),
        EsNieRecognizer(supported_language=language),
        ItFiscalCodeRecognizer(supported_language=language),
    ]
    weak = [
        DeTaxIdRecognizer(
            supported_language=language,
            context=["steuer", "idnr", "identifikationsnummer", "tax", "bzst"],
        ),
        DeIdCardRecognizer(
            supported_language=language,
            context=["ausweis", "personalausweis", "dokumentennummer", "seriennummer", "identity", "id card"],
        ),
    ]
    if language == "de":
        return strong + weak
    return strong + [needs_context(r, language) for r in weak]
