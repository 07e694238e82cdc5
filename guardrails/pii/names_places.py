"""Recognizers for people and places that en_core_web_sm misses, by cue words and gazetteers.

The small spaCy model finds English names in running prose; it misses most names of other
languages, names in dialogue labels and lists, small towns and all-caps place names. These
recognizers are regular expressions and set lookups (microseconds per prompt), so they also run
on streamed output.
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult

from .gazetteer import CALENDAR, TECH_TERMS, common_words, country_names, english_words, person_names

_UPPER = "A-ZÀ-ÖØ-ÞĀ-Ž\u0370-\u03ff\u0400-\u042f"
NAME_WORD = rf"[{_UPPER}][^\W\d_]+(?:[-'’][^\W\d_]+)*"
_NAME = rf"{NAME_WORD}(?:[ \t]+(?:[A-Z]\.?[ \t]+)?{NAME_WORD}){{0,3}}"

#: Words that open a description, never a name: what follows "name:" in a docstring's argument
#: list ("name: The name of the new voice") or a form's help text.
_NOT_A_NAME_OPENING = frozenset(
    [
        "The",
        "A",
        "An",
        "This",
        "That",
        "These",
        "Those",
        "Its",
        "Your",
        "Our",
        "Their",
        "Name",
        "Names",
        "Optional",
        "Required",
        "Default",
        "Unique",
    ]
)
#: Words that make a run of capitalised words an organisation, not a person.
_ORG_WORDS = frozenset(
    {
        "Inc",
        "Ltd",
        "Limited",
        "Corp",
        "Corporation",
        "Company",
        "Co",
        "Group",
        "Holdings",
        "Bank",
        "Trust",
        "Plc",
        "PLC",
        "LLC",
        "LLP",
        "SA",
        "AG",
        "GmbH",
        "NV",
        "BV",
        "SpA",
        "SPA",
        "Fund",
        "Partners",
        "Capital",
        "Technologies",
        "Systems",
        "Solutions",
        "Services",
        "Industries",
        "International",
        "University",
        "Institute",
        "Foundation",
        "Association",
        "Hospital",
        "School",
        "College",
        "Market",
        "Products",
        "Resources",
        "Energy",
        "Therapeutics",
        "Bancorporation",
        "ETF",
        "Insurance",
        "Airlines",
        "Motors",
        "Labs",
    }
)


_RELATIONS = (
    "kid|kids|son|daughter|child|wife|husband|partner|spouse|fiancée?|boyfriend|girlfriend|friend|"
    "brother|sister|mother|father|mom|mum|dad|uncle|aunt|cousin|nephew|niece|grandma|grandpa|"
    "grandmother|grandfather|neighbou?r|colleague|coworker|co-worker|boss|manager|assistant|tenant|landlord|client|patient"
)
_PERSONAL_NOUNS = (
    "address|phone|number|email|e-mail|birthday|account|card|passport|wife|husband|partner|son|"
    "daughter|kid|kids|child|children|mother|father|mom|mum|dad|brother|sister|boss|manager|doctor"
)

#: Family-name endings of languages whose names the gazetteer holds few of ("Blinova",
#: "Kvapilová", "Jóhannsdóttir", "Shervashidze", "Ivanković").
_SURNAME_ENDING = re.compile(
    r"(?:ov|ova|ová|ev|eva|ovich|evich|ovna|evna|enko|shvili|dze|oglu|oğlu|ski|ska|"
    r"sky|cki|cka|czyk|wicz|ović|ević|ić|dóttir|dottir|sson|poulos|opoulou|akis|escu|yan|ian)$"
)


class _LocalRecognizer(EntityRecognizer):
    """An English recognizer of one entity type with nothing to load (named after its class)."""

    def __init__(self, entity: str) -> None:
        super().__init__(supported_entities=[entity], name=type(self).__name__, supported_language="en")

    def load(self) -> None:
        pass


class ContextNameRecognizer(_LocalRecognizer):
    """Names right after words that announce one: "My name is …", "Name: …", "Dear …",
    "Dr. …", "follow up with …", "said …", "says …", "everyone calls me …", and the name line that heads
    an address block."""

    CUES = (
        r"(?:\b(?:[Mm]y name is|[Mm]y name's|[Cc]alls? me|I am|I'm|[Dd]irected [Bb]y|[Ww]ritten [Bb]y|"
        r"[Ss]igned|[Ff]ollow up with|[Ss]aid|[Ss]ays|[Aa]sked|[Rr]eplied|[Tt]old|[Ss]houted at|[Ww]rote to|[Mm]arried|"
        r"(?:[Mm]aiden|[Ll]ast|[Ff]irst|[Ff]amily|[Gg]iven|[Yy]our|[Hh]is|[Hh]er) name(?: is|\?|:)|[Ss]urname(?: is|\?|:)|[Nn]amed (?:him|her|them|it))"
        r"[ \t]*[:,]?"
        r"|\b(?:[Nn]ame|[Ff]ull [Nn]ame|[Cc]ustomer|[Pp]atient|[Cc]ontact|[Aa]ttn|[Bb]eneficiary|[Aa]uthor)[ \t]*:"
        r"|\b(?i:dr|mr|mrs|ms|mx|prof)\.?)[ \t]+"
    )

    def __init__(self) -> None:
        super().__init__("PERSON")
        self._cue = re.compile(self.CUES + rf"({_NAME})")
        # Greetings and a sentence that opens by addressing someone name a person only when the
        # word is a known name or no English word ("Hi Karítas", "Sue, can I …"; not "Hello World").
        self._greeting = re.compile(
            rf"\b(?:Hi|Hello|Hey|Dear)[ \t]+({_NAME})"
            rf"|\b(?:gave|given|give|gives|told|tell|sent|send|showed|show|handed|lent|paid|offered)"
            rf"[ \t]+({_NAME})(?=[ \t]+(?:his|her|their|my|our|your)\b)"
            rf"|(?:^|(?<=[.!?\n])[ \t]*)({NAME_WORD}),[ \t]+(?=(?:can|could|would|will|please|I|you|we|do|did|are|is)\b)",
            re.MULTILINE,
        )
        # "Hilarion's address", "Kristýna's kid": a possessive before a word for someone's data or kin.
        self._possessive = re.compile(rf"\b({NAME_WORD})['’]s[ \t]+(?:{_PERSONAL_NOUNS})\b")
        # "my kid Korneliusz", "her colleague Anouk": a kinship or work-relation word before a name.
        self._relation = re.compile(
            rf"\b(?i:my|his|her|our|their|your)[ \t]+(?:{_RELATIONS})(?:[ \t]+(?:named|called))?[ \t]+({_NAME})"
        )
        # "Veronica is …", "Jones began …": a known name opening a sentence, then a verb; "Leonida
        # lives on …", "Yuito Deguchi will be talking …": one or two words that are no English
        # word, then a verb that only people do.
        self._opening = re.compile(
            rf"(?:^|(?<=[.!?\n\"“])[ \t]*)({NAME_WORD})[ \t]+(?=(?:is|was|has|had|began|said|says|"
            rf"lives|lived|works|worked|wants|called|asked|told|spent|went|moved)\b)",
            re.MULTILINE,
        )
        self._opening_unknown = re.compile(
            rf"(?:^|(?<=[.!?\n\"“])[ \t]*)({NAME_WORD}(?:[ \t]+{NAME_WORD})?)[ \t]+(?=(?:began (?:writing|studying|singing|painting|acting|teaching|his|her)|said|says|lives|lived|"
            rf"works for|worked for|wants|asked|told|spent|moved|grew up|was born|is from|was from|comes from|"
            rf"will be (?:talking|speaking|presenting|joining)|is a \d+[ -]year)\b)",
            re.MULTILINE,
        )
        # Dialogue: a line that opens with a one-word label ("Alette: …") in a text with two or more.
        # (not a sentence that opens before a reST role: "Canceling :meth:`ping` is discouraged")
        self._label = re.compile(rf"^[ \t]*({NAME_WORD})[ \t]*:(?![a-z][\w-]*:`)", re.MULTILINE)
        # "Mimount Y Bijster": a middle initial between two words that are no English words.
        self._initial = re.compile(rf"(?<![\w.-])({NAME_WORD}[ \t]+[A-Z]\.?[ \t]+{NAME_WORD})(?![\w-])")
        self.names = person_names()
        self.words = english_words()
        self.common = common_words()
        self.countries = country_names()
        self._block = re.compile(
            rf"^[ \t]*({NAME_WORD}(?:[ \t]+(?:[A-Z]\.?[ \t]+)?{NAME_WORD}){{1,3}})[ \t]*\n(?:[ \t]*\n)?"
            r"[ \t]*\d{1,6}[ \t]+\S",
            re.MULTILINE,
        )

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        out = []
        for rx, score in ((self._cue, 0.6), (self._block, 0.65)):
            for m in rx.finditer(text):
                words = m.group(1).split()
                if words[0] in _NOT_A_NAME_OPENING:
                    continue  # "name: The name of the voice", "Name: Name of the container": a description
                if not _ORG_WORDS.intersection(words):
                    out.append(RecognizerResult("PERSON", m.start(1), m.end(1), score))
        for m in self._greeting.finditer(text):
            g = next(i for i in (1, 2, 3) if m.group(i))
            words = m.group(g).split()
            if any(w in self.names or w.lower() not in self.words for w in words) and not TECH_TERMS.intersection(
                words
            ):
                out.append(RecognizerResult("PERSON", m.start(g), m.end(g), 0.6))
        for m in self._relation.finditer(text):
            if not TECH_TERMS.intersection(m.group(1).split()):
                out.append(RecognizerResult("PERSON", m.start(1), m.end(1), 0.6))
        for m in self._opening.finditer(text):
            w = m.group(1)
            if w in self.names and w.lower() not in self.common and w not in TECH_TERMS:
                out.append(RecognizerResult("PERSON", m.start(1), m.end(1), 0.6))
        for m in self._opening_unknown.finditer(text):
            words = m.group(1).split()
            if all(
                w.lower() not in self.words and w not in TECH_TERMS and w not in _ORG_WORDS and w not in self.countries
                for w in words
            ):
                out.append(RecognizerResult("PERSON", m.start(1), m.end(1), 0.6))
        # A label counts when it is no English word, or a known name ("Mark: …") in a dialogue
        # where another label is a name too (not "Note: …", "Answer: …").
        labels = [
            m
            for m in self._label.finditer(text)
            if m.group(1) not in TECH_TERMS and not any(c.isupper() for c in m.group(1)[1:])
        ]
        foreign = [m for m in labels if m.group(1).lower() not in self.words]
        known = [m for m in labels if m.group(1) in self.names]
        if len(labels) >= 2:
            named = len({x.group(1) for x in known}) >= 2
            for m in labels:
                if m in foreign or (named and m in known):
                    out.append(RecognizerResult("PERSON", m.start(1), m.end(1), 0.6))
        for m in self._possessive.finditer(text):
            if m.group(1) not in TECH_TERMS and m.group(1).lower() not in self.common:
                out.append(RecognizerResult("PERSON", m.start(1), m.end(1), 0.6))
        for m in self._initial.finditer(text):
            outer = m.group(1).split()
            if (
                all(w.lower() not in self.words or w in self.names for w in (outer[0], outer[-1]))
                and not _ORG_WORDS.intersection(outer)
                and not TECH_TERMS.intersection(outer)
            ):
                out.append(RecognizerResult("PERSON", m.start(1), m.end(1), 0.65))
        return out


class NameGazetteerRecognizer(_LocalRecognizer):
    """Runs of capitalised words that hold a known given or family name ("Csenger Gábor",
    "Marija Cvetka M Pustivšek", "Jakob", "… and Martin were").

    A run counts when two of its words are gazetteer names ("Luiza Costa"), or one is and it is
    no English word ("Jakob"). A name that English also has as a noun ("Martin", "Cynthia",
    "King") counts alone only mid-sentence and not after a determiner ("the King"), or as a
    dialogue label ("Cynthia: …"); one that is also a verb, adjective or stop word ("Will",
    "Rose", "Grant") never counts alone. Runs with a company word ("Holdings", "Ltd") and words
    of the tech trade ("Ruby", "Swift") are left alone.
    """

    _RUN = re.compile(rf"(?<![\w@./\\-]){NAME_WORD}(?:[ \t]+(?:[A-Z]\.?[ \t]+)?{NAME_WORD}){{0,3}}(?![\w@/\\-])")
    _DETERMINERS = frozenset(
        {
            "the",
            "a",
            "an",
            "this",
            "that",
            "these",
            "those",
            "my",
            "your",
            "our",
            "their",
            "his",
            "her",
            "its",
            "each",
            "every",
            "any",
            "some",
            "no",
            "new",
            "old",
        }
    )

    def __init__(self) -> None:
        super().__init__("PERSON")
        self.names = person_names()
        self.words = english_words()
        self.common = common_words()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        out = []
        for m in self._RUN.finditer(text):
            words = [w for w in re.split(r"[ \t]+", m.group()) if len(w.rstrip(".")) > 1]
            if _ORG_WORDS.intersection(words) or TECH_TERMS.intersection(words):
                continue
            known = [
                w
                for w in words
                if (w in self.names and w.lower() not in self.common and len(w) > 2) or self._surname_like(w)
            ]
            others_foreign = all(w in known or w.lower() not in self.words for w in words)
            if len(known) >= 2:
                score = 0.75
            elif len(known) == 1 and (known[0].lower() not in self.words or (len(words) > 1 and others_foreign)):
                score = 0.65
            elif (
                len(known) == 1
                and len(words) == 1
                and known[0].lower() not in self.common
                and self._name_position(text, m.start(), m.end())
            ):
                score = 0.6
            else:
                continue
            start, end = self._trim(text, m.start(), m.end())
            if end > start:
                out.append(RecognizerResult("PERSON", start, end, score))
        return out

    def _surname_like(self, word: str) -> bool:
        return len(word) > 4 and bool(_SURNAME_ENDING.search(word)) and word.lower() not in self.words

    def _name_position(self, text: str, start: int, end: int) -> bool:
        """Mid-sentence and not after a determiner, or a dialogue label at a line start."""
        line_start = text.rfind("\n", 0, start) + 1
        if not text[line_start:start].strip():
            return text[end : end + 1] == ":"
        before = text[:start].rstrip()
        if before[-1:] in ".!?":
            return False
        prev = before.rsplit(None, 1)[-1].lower() if before else ""
        return prev not in self._DETERMINERS

    def _trim(self, text: str, start: int, end: int) -> tuple[int, int]:
        """Drop leading and trailing words that are plain English and no name ("Hi Karítas",
        "Why is Maj")."""
        spans = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
        while spans and self._plain(text[spans[0][0] : spans[0][1]]):
            spans.pop(0)
        while spans and self._plain(text[spans[-1][0] : spans[-1][1]]):
            spans.pop()
        return (spans[0][0], spans[-1][1]) if spans else (start, start)

    def _plain(self, word: str) -> bool:
        return word not in self.names and (word.lower() in self.words or word in CALENDAR)


class CountryRecognizer(_LocalRecognizer):
    """English country names written as names ("Cyprus", "CZECH REPUBLIC"; not "turkey")."""

    def __init__(self) -> None:
        super().__init__("LOCATION")
        forms = {n for name in country_names() for n in (name, name.upper())}
        self._rx = (
            re.compile(
                r"(?<![\w-])(?:" + "|".join(re.escape(n) for n in sorted(forms, key=len, reverse=True)) + r")(?![\w-])"
            )
            if forms
            else None
        )

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        if self._rx is None:
            return []
        return [RecognizerResult("LOCATION", m.start(), m.end(), 0.7) for m in self._rx.finditer(text)]


_PLACE = rf"(?:{NAME_WORD}|[{_UPPER}]{{2,}})(?:[ \t]+(?:(?:de|da|do|dos|das|del|la|le|u|upon|am|an|im|sur|en)[ \t]+)?(?:{NAME_WORD}|[{_UPPER}]{{2,}})){{0,3}}"


class ContextLocationRecognizer(_LocalRecognizer):
    """Places after words that announce one: "moved here from …", "grew up in …", "flew to …",
    "I'm in …", "arrived at …", "travelling to …", "born in …"."""

    CUES = (
        r"\b(?:(?:[Mm]oved|[Mm]oving|[Rr]elocated|[Cc]ame|[Ee]migrated|[Ii]mmigrated)(?:[ \t]+here)?[ \t]+(?:from|to)"
        r"|(?:[Gg]rew up|[Bb]orn|[Rr]aised|[Ll]ive|[Ll]ives|[Ll]iving|[Ll]ived|[Bb]ased|[Ss]taying|[Rr]esid(?:e|es|ing))[ \t]+(?:in|near)"
        r"|(?:[Ff]lew|[Ff]ly|[Ff]lying|[Tt]ravel(?:l?ing|l?ed)?|[Tt]rip|[Hh]oliday|[Vv]acation|[Dd]rove|[Dd]riving|[Hh]eaded)[ \t]+(?:to|from)"
        r"|(?:[Aa]rrived|[Aa]rriving|[Ll]anded)[ \t]+(?:at|in)"
        r"|(?:I'm|I am|[Ww]e're|[Ww]e are|[Hh]e's|[Ss]he's|[Cc]urrently)[ \t]+in"
        r"|[Hh]ome ?town(?:[ \t]+of)?|[Hh]ome city(?:[ \t]+of)?|[Cc]ity of|[Tt]own of|[Vv]illage of|[Ss]uburb of|[Uu]niversity of"
        r"|[Oo]riginally[ \t]+from|[Cc]oming[ \t]+from|[Hh]ails[ \t]+from"
        r"|(?:[Rr]eturned|[Tt]ravell?ed|[Ww]ent back|[Cc]ame back)[ \t]+to|[Vv]isit(?:ed|ing)"
        r"|(?:[Ss]treet|[Rr]oad|[Aa]venue)[ \t]+in|(?:Inc\.?|Ltd\.?|LLC|PLC|[Pp]lc|Corp\.?|Corporation|GmbH)[ \t]+in"
        r"|(?:^|(?<=\n))[ \t]*(?:Where|Location|City|Town|Hometown|Place of birth|Birthplace|Venue)[ \t]*:)"
        rf"[ \t]+({_PLACE})"
    )

    def __init__(self) -> None:
        super().__init__("LOCATION")
        self._rx = re.compile(self.CUES)
        # An all-caps place before a postcode: "GRIGADALE PH36 9QH", "in ΛΕΜΕΣΟΣ 3502".
        caps = rf"[{_UPPER}]{{3,}}(?:[ \t]+[{_UPPER}]{{3,}}){{0,2}}"
        self._postcode = re.compile(
            rf"(?<![\w-])({caps}[ \t]+[A-Z]{{1,2}}\d[A-Z\d]?[ \t]\d[A-Z]{{2}})(?![\w-])"
            rf"|\bin[ \t]+({caps}[ \t]+\d{{4,5}})(?![\w.-])"
        )

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        out = []
        for m in self._rx.finditer(text):
            end = m.start(1)
            for w in re.finditer(r"\S+", m.group(1)):  # up to a weekday, a product or a company word
                if w.group() in CALENDAR or w.group() in TECH_TERMS or w.group() in _ORG_WORDS:
                    break
                if w.group()[0].isupper():
                    end = m.start(1) + w.end()
            if end > m.start(1):
                out.append(RecognizerResult("LOCATION", m.start(1), end, 0.65))
        for m in self._postcode.finditer(text):
            g = 1 if m.group(1) else 2
            out.append(RecognizerResult("LOCATION", m.start(g), m.end(g), 0.65))
        return out


_HOUSE = r"\d{1,5}[A-Za-z]?"
_STREET_RUN = (
    rf"(?:[A-Z]\.?[ \t]+)?{NAME_WORD}(?:[ \t]+(?:{NAME_WORD}|[a-zà-ž]{{2,12}}(?=[ \t]+(?:{NAME_WORD}|\d)))){{0,3}}"
)


class ContextStreetRecognizer(_LocalRecognizer):
    """Streets written without a street word, after words that announce an address: "lives on
    Gartnervænget 37", "the north side of Příční 1429", "the bus station is on 110 Kontomari",
    "refers to Trg revolucije 91 street". The pattern recognizers need a street word or a
    house number on both sides; here the cue stands in for them, and a run made only of English
    words ("is on Windows 10", "meet at Gate 4") does not count."""

    _RX = re.compile(
        r"\b(?:(?:[Ll]ives?|[Ll]iving|[Ll]ived|[Ss]tay(?:s|ing)?|[Ll]ocated|[Ss]ituated|is|are|[Mm]eet(?:[ \t]+me)?|"
        r"[Rr]eturn(?:ed)?|[Dd]eliver(?:ed)?|[Ss]end|[Ss]ent|[Ss]hip(?:ped)?)[ \t]+(?:on|at|to)|[Ss]ide[ \t]+of|"
        r"[Cc]orner[ \t]+of|[Rr]efers[ \t]+to)[ \t]+"
        rf"((?:{_HOUSE}[ \t]+)?{_STREET_RUN}[ \t]+{_HOUSE}(?![\w.,:/-]?\d)|{_HOUSE}[ \t]+{_STREET_RUN})(?![\w-])"
    )

    def __init__(self) -> None:
        super().__init__("STREET_ADDRESS")
        self.words = english_words()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        out = []
        for m in self._RX.finditer(text):
            words = [w for w in m.group(1).split() if not w[0].isdigit() and len(w.rstrip(".")) > 1]
            if (
                words
                and any(w.lower() not in self.words for w in words)
                and not _ORG_WORDS.intersection(words)
                and not TECH_TERMS.intersection(words)
                and not CALENDAR.intersection(words)
            ):
                out.append(RecognizerResult("STREET_ADDRESS", m.start(1), m.end(1), 0.6))
        return out
