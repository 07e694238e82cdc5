"""Spans found from the layout of a text, after the recognizers have run: the rest of an address
block below a street or a name line, the town after a street, the house number before it, the
other members of an enumeration of names, and every recurrence of a name found once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .gazetteer import TECH_TERMS, country_names, english_words


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    entity: str
    score: float


NAME_PARTICLES = {
    "van",
    "von",
    "der",
    "den",
    "de",
    "del",
    "della",
    "di",
    "da",
    "dos",
    "das",
    "du",
    "la",
    "le",
    "bin",
    "binti",
    "ibn",
    "al",
    "el",
    "ter",
    "ten",
    "zu",
    "y",
    "e",
    "st.",
}


def _edge_word(word: str) -> bool:
    """A word a name does not start or end with: digits ("637"), or all lowercase and no name
    particle ("said", "ms.", "kid"; not "van", not "d'Arc")."""
    if any(c.isdigit() for c in word):
        return True
    return word[:1].islower() and not any(c.isupper() for c in word) and word.lower() not in NAME_PARTICLES


_POSSESSIVE_END = re.compile(r"['’]s$")


def possessive_cut(value: str) -> int:
    """Characters of a final possessive 's to cut from a name ("Tamsin's" -> 2), else 0."""
    return 2 if len(value) > 2 and _POSSESSIVE_END.search(value) else 0


def trim_person(text: str, start: int, end: int) -> tuple[int, int]:
    """Cut a PERSON span to its name: the small model often runs a name into the next line or a
    house number ("Helena Carlsen\\n\\n637"), and the token classifier sometimes takes a word on
    either side ("ms. Adrian", "said Herman", "Thekla's kid"). Keeps the first line with letters,
    without leading or trailing words that carry digits or are lowercase words, and without a
    possessive 's at the end. (Left whole, such a span was dropped as no name, and with it the
    cue recognizer's "Adrian" that Presidio had merged into it.)"""
    seg = text[start:end]
    offset = 0
    for line in seg.split("\n"):
        if any(c.isalpha() for c in line):
            offset = seg.index(line) if line else 0
            seg = line
            break
        offset += len(line) + 1
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", seg)]
    while words and _edge_word(seg[words[-1][0] : words[-1][1]]):
        words.pop()
    while words and _edge_word(seg[words[0][0] : words[0][1]]):
        words.pop(0)
    if not words:
        return start, start
    last = seg[words[-1][0] : words[-1][1]]
    return start + offset + words[0][0], start + offset + words[-1][1] - possessive_cut(last)


_ADDRESS_LINE = re.compile(
    r"^[ \t]*(?:[^\w\s]+[ \t]*)?((?:[^\W\d_][^\s,]*|\d[\w-]*)(?:[ \t,]+(?:[^\W\d_][^\s,]*|\d[\w-]*)){0,5})[ \t]*$"
)
_TOWN_AFTER = re.compile(
    r"[ \t]*,[ \t]*((?:[^\W\d_][^\W\d_'’.-]*|\d{4,6})(?:[ \t]+(?:[^\W\d_][^\W\d_'’.-]*|\d{4,6})){0,3})(?=[ \t]*(?:[,.;:!?)\n]|$))"
)


def _capitalised(words: list[str]) -> bool:
    """Capitalised words and numbers, with short particles between them ("Bystré u Policky")."""
    return (
        bool(words)
        and all(w[0].isupper() or w[0].isdigit() or w in NAME_PARTICLES or len(w) <= 3 for w in words)
        and (words[0][0].isupper() or words[0][0].isdigit())
    )


_HOUSE_NUMBER_BEFORE = re.compile(r"(?<![\w.,-])\d{1,6}[A-Za-z]?[ \t]+$")


def with_house_number(text: str, street: Span) -> Span:
    """A street span with the house number written before it ("083 254 Damvergi Street",
    "44472 Rua …"): the recognizers start at the street's own number or name."""
    m = _HOUSE_NUMBER_BEFORE.search(text, max(0, street.start - 10), street.start)
    return Span(m.start(), street.end, street.entity, street.score) if m else street


_BLANK_LINE_NEXT = re.compile(r"\n[ \t]*\n")


def name_lines(text: str, spans: list[Span]) -> list[Span]:
    """PERSON spans that fill their line and are followed by a blank line: the head of an address
    block that has no street ("Leigha Mackay\\n\\nLa Sagne\\nSwitzerland")."""
    out = []
    for s in spans:
        if s.entity != "PERSON":
            continue
        line_start = text.rfind("\n", 0, s.start) + 1
        line_end = text.find("\n", s.end)
        if (
            line_end >= 0
            and not text[line_start : s.start].strip()
            and not text[s.end : line_end].strip()
            and _BLANK_LINE_NEXT.match(text, line_end)
        ):
            out.append(s)
    return out


_ITEM = r"[^\W\d_][\w'’-]*(?:[ \t]+[A-Z][\w'’-]*){0,2}"
_LIST = re.compile(rf"(?<![\w-]){_ITEM}(?:,[ \t]*{_ITEM})+,?[ \t]+(?:and|or|&)[ \t]+{_ITEM}")


def list_mates(text: str, spans: list[Span]) -> list[Span]:
    """Capitalised items of an enumeration ("Wiola, Ida, Maria Lopez, Victoria and Calvin") in
    which two or more items are already names: the others are names too."""
    out = []
    people = [s for s in spans if s.entity == "PERSON"]
    m: re.Match[str] | None
    for m in _LIST.finditer(text):
        # the separators become commas of the same length, so offsets stay those of the text
        flat = re.sub(r"[ \t](?:and|or|&)[ \t]", lambda x: "," + " " * (len(x.group()) - 1), m.group())
        items = [
            (
                m.start() + i.start() + len(i.group()) - len(i.group().lstrip()),
                m.start() + i.start() + len(i.group().rstrip()),
            )
            for i in re.finditer(r"[^,]+", flat)
            if i.group().strip()
        ]
        if not items or not all(text[a].isupper() for a, _ in items):
            continue
        hits = [[p for p in people if p.start < b and a < p.end] for a, b in items]
        if sum(bool(h) for h in hits) >= 2:
            score = max(p.score for h in hits for p in h)
            out += [Span(a, b, "PERSON", score) for (a, b), h in zip(items, hits) if not h]
    # "Hobbs and Tom Baker were …": one word beside a name, that is no English word
    for p in people:
        for m in (_PAIR_BEFORE.search(text, max(0, p.start - 40), p.start), _PAIR_AFTER.match(text, p.end)):
            if (
                m
                and (w := m.group(1)).lower() not in english_words()
                and w not in TECH_TERMS
                and w not in country_names()
                and not any(x.start < m.end(1) and m.start(1) < x.end for x in spans)
            ):
                out.append(Span(m.start(1), m.end(1), "PERSON", p.score))
    return out


_NAME_WORD = r"[A-ZÀ-ÖØ-ÞĀ-Ž][^\W\d_]{2,}"
_PAIR_BEFORE = re.compile(rf"(?<![\w-])({_NAME_WORD})[ \t]+(?:and|&)[ \t]+$")
_PAIR_AFTER = re.compile(rf"[ \t]+(?:and|&)[ \t]+({_NAME_WORD})(?![\w-])")


def lines_above_country(text: str, spans: list[Span], max_lines: int = 2) -> list[Span]:
    """The town lines above a country line of an address block ("Ilpla\nEstonia"): short lines
    of capitalised words right above a line that holds only a country."""
    out = []
    countries = country_names()
    for s in spans:
        value = text[s.start : s.end]
        line_start = text.rfind("\n", 0, s.start) + 1
        line_end = text.find("\n", s.end)
        line_end = len(text) if line_end < 0 else line_end
        if s.entity != "LOCATION" or value not in countries or text[line_start:line_end].strip() != value:
            continue
        end = line_start - 1
        for _ in range(max_lines):
            if end <= 0:
                break
            start = text.rfind("\n", 0, end) + 1
            m = _ADDRESS_LINE.match(text[start:end])
            words = m.group(1).replace(",", " ").split() if m else []
            if (
                not m
                or end - start > 40
                or not _capitalised(words)
                or any(x.start < end and start < x.end for x in spans)
            ):
                break
            out.append(Span(start + m.start(1), start + m.end(1), "LOCATION", 0.6))
            end = start - 1
    return out


def address_block_lines(text: str, streets: list[Span], max_lines: int = 4, min_lines: int = 1) -> list[Span]:
    """The rest of an address after a street: the town after a comma on the same line
    ("…, Hasle", "…, COLD BLOW") and the lines below it in an address block ("Svratka",
    "Czech Republic 45098", "??? PALMYRA"): short lines of capitalised words and numbers. NER
    misses most small towns, all-caps names and postcodes there."""
    out: dict[tuple[int, int], Span] = {}
    for st in streets:
        m = _TOWN_AFTER.match(text, st.end)
        if m and _capitalised(m.group(1).split()):
            out[(m.start(1), m.end(1))] = Span(m.start(1), m.end(1), "LOCATION", 0.6)
        pos = text.find("\n", st.end)
        block: list[Span] = []
        for _ in range(max_lines):
            if pos < 0:
                break
            start = pos + 1
            end = text.find("\n", start)
            end = len(text) if end < 0 else end
            line = text[start:end]
            if not line.strip() and end < len(text):  # a blank line inside the block
                pos = end
                continue
            m = _ADDRESS_LINE.match(line)
            words = m.group(1).replace(",", " ").split() if m else []
            if not m or len(line) > 48 or not _capitalised(words):
                break
            block.append(Span(start + m.start(1), start + m.end(1), "LOCATION", 0.6))
            pos = end if end < len(text) else -1
        if len(block) >= min_lines:
            out.update(((s.start, s.end), s) for s in block)
    return list(out.values())


def propagate_names(texts: list[str], found: list[list[Span]], threshold: Callable[[str], float]) -> list[list[Span]]:
    """Adds every other occurrence of a detected name, in any message of the request: NER finds
    "Luiza Costa" in one sentence and misses "Costa" two sentences on, or the same name in the
    next message. Surnames and given names of a multi-word name count on their own."""
    values: dict[str, Span] = {}
    for text, spans in zip(texts, found):
        for s in spans:
            if s.entity != "PERSON" or s.score < threshold(s.entity):
                continue
            value = text[s.start : s.end]
            parts = [re.sub(r"['’]s$", "", w) for w in value.split()]  # "Haajanen's" also finds "Haajanen"
            for v in [value] + (parts if len(parts) > 1 else []):
                if (
                    len(v) > 2
                    and v[0].isupper()
                    and v.lower() not in NAME_PARTICLES
                    and (v not in values or values[v].score < s.score)
                ):
                    values[v] = s
    if not values:
        return found
    rx = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)) + r")(?!\w)")
    out = []
    for text, spans in zip(texts, found):
        extra = [
            Span(m.start(), m.end(), "PERSON", values[m.group()].score)
            for m in rx.finditer(text)
            if not any(s.start <= m.start() and m.end() <= s.end for s in spans)
        ]
        out.append(spans + extra if extra else spans)
    return out
