"""Where a text is code: the spans in which a capitalised word is an identifier, not a person.

spaCy's small model reads technical prose as news: "ParamSpec", "Raises", "Args" and words that
open a docstring sentence come back as PERSON, LOCATION or NRP. `CodeContext.covers(start, end)`
says whether every word of a span lies in code:

* fenced code blocks (``` or ~~~), except the string literals and comments in them (a name in
  `name = "Maria Gonzalez"` or `# ask Maria` is written for people);
* inline code between backticks (`ParamSpec`, ``Raises``) and reST roles and fields
  (:class:`Foo`, :param name:);
* stack-trace lines (`Traceback (most recent call last):`, `File "…", line 3, in f`, and the
  source line under a frame), doctest lines (`>>> `, `... `) and docstring section headers
  ("Args:", "Raises", "Returns", alone on their line);
* log-line prefixes: the timestamp and the level, logger, host and process tokens after it;
* tokens shaped like code wherever they stand: snake_case, CamelCase and camelCase (not a known
  given or family name, nor "McDonald"), dotted names (`os.path`, `setup.py`), calls (`f()`),
  paths, URLs without user info, options (`--verbose`), variables (`$HOME`), and tokens holding
  code punctuation (`Optional[str]`, `key=value`).

`code_hits` picks the analyzer results to drop (analyzer.py calls it on every analysis):
entities found only by NER or a gazetteer (PERSON, LOCATION, NRP, ORGANIZATION) where `covers`
is true, unless a cue recognizer ("my name is", "Dear …", "lives in …") found one there too; cue
hits inside code regions (the dialogue-label cue reads "Arguments:" as a speaker); in technical
texts, spaCy's words of the trade ("Proxy Support", "# Uncomment the next line"); phone numbers
inside a timestamp; loopback addresses. Structured identifiers (e-mails, phones, cards, IBANs,
…) are masked wherever they are.

Cost: nothing until a span is asked about; then one pass over the text's line starts for fences
(a regex anchored at line starts), and per span, work proportional to its line and words. The
regexes are Python's, each either anchored at a line or token start with no nested or adjacent
overlapping quantifiers, or matched against a single whitespace-free token of bounded length:
linear in the text.

A text analysed in chunks (long prompts, see analyzer.split_chunks) may start inside a fenced
block; a chunk whose first fence is bare and whose next one carries a language ("```python")
is read as starting inside a block.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from .gazetteer import country_names, english_words, person_names
from .token_ner import RECOGNIZER_NAME

#: Longest whitespace-free token classified by pattern; longer ones (hashes, base64, long URLs)
#: are code by length alone.
MAX_TOKEN = 200

_FENCE = re.compile(r"^[ \t]{0,3}(?:```|~~~)[ \t]*([^\s`]*)", re.MULTILINE)
# Lines that are code whole: a stack frame, the trace header, doctest prompts, a Java/JS frame.
_CODE_LINE = re.compile(
    r"[ \t]*(?:Traceback \(most recent call last\):"
    r"|File \"[^\"\n]*\", line \d+"
    r"|>>>(?: |$)|\.\.\.(?: |$)"
    r"|at [\w$.<>]+ ?\([^()\n]*\)[ \t]*$)"
)
_FRAME = re.compile(r"[ \t]*File \"[^\"\n]*\", line \d+")
#: Docstring section headers (Google and NumPy styles), alone on their line.
_SECTIONS = (
    "Args|Arguments|Parameters|Params|Other Parameters|Keyword Args|Keyword Arguments|Kwargs|Returns|Return|"
    "Yields|Yield|Raises|Raise|Warns|Examples|Example|Notes|Note|Attributes|Methods|See Also|References|"
    "Warnings|Warning|Todo|Receives|Usage|Tip|Hint|Important|Caution|Danger|Deprecated|Version"
)
_SECTION_LINE = re.compile(rf"[ \t]*(?:{_SECTIONS})[ \t]*(?::[ \t]*)?$")
# Log prefixes: a timestamp at the line start (after at most one short token, as "1234:M"), then
# up to four level, logger, host, process or bracketed tokens.
_TIMESTAMP = (
    r"\[?(?:\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2}| ?UTC)?"
    r"|\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}(?:\.\d{1,9})?"
    r"|[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}"
    r"|\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?)\]?"
)
_TIMESTAMP_RX = re.compile(_TIMESTAMP)
_LEVELS = (
    "DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|ERR|CRITICAL|CRIT|FATAL|TRACE|LOG|STATEMENT|DETAIL|HINT|CONTEXT|PANIC|"
    "ALERT|EMERG|[IWEDFV]"
)
# After the timestamp: a level, a bracketed thread or module, a process ("sshd[811]:"), a logger
# name that is lower case or dotted ("uvicorn.error:"), a marker ("*"). Not "Maria:", a speaker.
_AFTER_TIMESTAMP = (
    rf"(?:\[[^\]\n]{{0,80}}\]|(?:{_LEVELS}):?|[\w.\-/]{{1,80}}\[\d{{1,10}}\]:|[a-z][\w.\-/]{{0,79}}:"
    r"|[A-Za-z][\w\-]{0,40}[./][\w.\-/]{0,40}:|[*#.\-])"
)
_LOG_PREFIX = re.compile(
    # an optional short token with a colon or "=" before the timestamp ("1234:M", "pid=42")
    rf"[ \t]*(?:[\w.\-]{{0,12}}[:=][\w:.=\-]{{0,12}} )?{_TIMESTAMP}(?:[ \t]+{_AFTER_TIMESTAMP}){{0,4}}"
    rf"|[ \t]*\[?(?:{_LEVELS})\]?(?::[\w.\-]{{1,80}})*:(?:[ \t]+[a-z][\w.\-]{{0,79}}:)?"
)
#: "Start-Date: 2025-06-24", "Upgrade: libudev1": a capitalised label opening its line, a value after it.
_FIELD_LABEL = re.compile(r"^[ \t]*([A-Z][A-Za-z0-9]{0,30}(?:-[A-Za-z0-9]{1,30}){0,3}):[ \t]+\S", re.MULTILINE)
_MD_LINK = re.compile(r"\[([^\]\s]{1,100})\]\([^()\s]{0,400}\)[.,;:!?]?")
_INLINE_CODE = re.compile(r"``[^`\n]{1,400}``|`[^`\n]{1,400}`")
_ROLE = re.compile(
    r":[a-z][\w\-:]{0,30}:`[^`\n]{0,200}`|:(?:param|type|raises?|returns?|rtype|var|ivar|cvar)\b[^:\n]{0,80}:"
)

_CODE_CHAR = re.compile(r"[_./\\=()\[\]{}<>$:#|]")
_STRIP = "\"'()[]{}<>,;:!?*“”‘’«»"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,15}://[^@/\s]*(?:/.*)?")
_PATH = re.compile(r"(?:~|\.{1,2})?[/\\]?[\w.\-~]+(?:[/\\][\w.\-~@]*)+|[A-Za-z]:\\.*")
_CALL = re.compile(r"[A-Za-z_][\w.]*\(.*")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.\w+)+")
_INITIALS = re.compile(r"(?:[A-Z]\.)+[A-Z]?")
_NAME_PREFIX = re.compile(r"(?:Mc|Mac|O|De|Di|Da|Du|La|Le|Van|Von|Ter|Ten|Fitz|St)[A-Z][a-z]+")
_CODE_PUNCT = re.compile(r"[\w][=\[\]{}<>|#$%^&*+\\/@][\w\"'\[({<]|^(?:--?|\$\{?)[A-Za-z_]|[\w]::[\w]|->|=>")


#: Capitalised words that are literals of programming languages, never names here.
CODE_LITERALS = frozenset(
    {"True", "False", "None", "Null", "NULL", "NaN", "Nil", "Infinity", "Ellipsis", "NotImplemented"}
)


@lru_cache(maxsize=4096)
def code_token(token: str) -> bool:
    """True when a whitespace-free token is shaped like code rather than like a word."""
    if len(token) > MAX_TOKEN:
        return True
    link = _MD_LINK.fullmatch(token)
    if link:  # "[SemVer](https://semver.org/)": the link's text is judged, not its target
        return code_token(link.group(1))
    if "://" in token:  # a URL with user info ("https://ana:pw@host") is not code
        return _URL.fullmatch(token.strip(_STRIP).rstrip(".,;:!?")) is not None
    if _CALL.fullmatch(token) or _CODE_PUNCT.search(token):
        return True
    word = token.strip(_STRIP)
    while word.endswith((".", "…")) and not word.endswith(".."):
        word = word[:-1]
    if not word:
        return False
    if word in CODE_LITERALS:
        return True
    if "/" in word or "\\" in word:
        return _PATH.fullmatch(word) is not None
    if "_" in word and word.replace("_", "").isalnum() and any(c.isalpha() for c in word):
        return True  # snake_case, SCREAMING_CASE, __dunder__
    if "." in word:
        return _DOTTED.fullmatch(word) is not None and not _INITIALS.fullmatch(word)
    if word.isalnum() and _camel(word):
        return word not in person_names() and not _NAME_PREFIX.fullmatch(word)
    return False


def _camel(word: str) -> bool:
    """camelCase, CamelCase with two humps or more, or an acronym run before a hump (IOError)."""
    for a, b in itertools.pairwise(word):
        if a.islower() and b.isupper():
            return True
    return any(a.isupper() and b.isupper() and c.islower() for a, b, c in zip(word, word[1:], word[2:]))


class CodeContext:
    """Answers `covers(start, end)` for one text; computes what it needs on first use."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._fences: list[tuple[int, int, list[tuple[int, int]]]] | None = None
        self._starts: list[int] = []
        self._lines: dict[int, tuple[int, list[tuple[int, int]]]] = {}
        self._technical: bool | None = None
        self._field_labels: tuple[dict[int, bool], int] | None = None  # label start -> is a field; count

    def covers(self, start: int, end: int, tokens: bool = True) -> bool:
        """True when every word of text[start:end] is code (see the module docstring). With
        `tokens` false only regions count (fences, inline code, code lines, log prefixes), not a
        word's own shape."""
        words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", self.text[start:end])]
        return bool(words) and all(self._word_in_code(a, b, tokens) for a, b in words)

    def in_timestamp(self, start: int, end: int) -> bool:
        """True when text[start:end] lies inside a date-and-time stamp ("2025-06-24 14:39:44")."""
        if end - start > 40:
            return False
        lo, hi = max(0, start - 40), min(len(self.text), end + 40)  # a stamp is shorter than 40
        return any(m.start() <= start and end <= m.end() for m in _TIMESTAMP_RX.finditer(self.text, lo, hi))

    def _word_in_code(self, start: int, end: int, tokens: bool = True) -> bool:
        if tokens and self.text[start:end].strip(_STRIP + ".") in CODE_LITERALS:
            return True  # "False" in a docstring, "None" in a comment
        block = self._fence_at(start)
        if block is not None:
            return not any(a <= start < b for a, b in block)  # inside a string or comment: prose
        line_start = self.text.rfind("\n", 0, start) + 1
        code_end, spans = self._line(line_start)
        if start < code_end:
            return True
        if any(a <= start and end <= b for a, b in spans):
            return True
        if not tokens:
            return False
        line_end = self._line_end(line_start)
        tok_start = (
            max(self.text.rfind(" ", line_start, start), self.text.rfind("\t", line_start, start), line_start - 1) + 1
        )
        tok_end = min(
            x for x in (self.text.find(" ", end, line_end), self.text.find("\t", end, line_end), line_end) if x >= 0
        )
        return code_token(self.text[tok_start:tok_end])

    def after_field(self, start: int) -> bool:
        """True when text[start] follows a reST field or role on its line (":param name: Name"):
        a cue word ("name:") inside the field is code, not a cue."""
        line_start = self.text.rfind("\n", 0, start) + 1
        _, spans = self._line(line_start)
        return any(b <= start and not self.text[b:start].strip() for _, b in spans)

    def field_label(self, start: int, end: int) -> bool:
        """True when text[start:end] is a field's name, not a speaker's: it opens its line and a
        colon follows, and either nothing else is on the line and it is an English word (a heading,
        "Fields:") or the text has two or more other such labels and most of them are words or
        compounds that are no given or family name ("Start-Date:", "Upgrade:", "End-Date:" around
        "Commandline:"). A chat's labels are names ("Alette: …", "Bo: …"): those are kept."""
        text = self.text
        line_start = text.rfind("\n", 0, start) + 1
        if text[end : end + 1] != ":" or text[line_start:start].strip() or " " in text[start:end]:
            return False
        line_end = self._line_end(line_start)
        if not text[end + 1 : line_end].strip():
            return _english(text[start:end])
        if self._field_labels is None:  # once per text: a transcript has a label on every line
            names = person_names()
            found = {m.start(1): m.group(1) for m in _FIELD_LABEL.finditer(text)}
            is_field = {at: w not in names and ("-" in w or _english(w)) for at, w in found.items()}
            self._field_labels = (is_field, sum(is_field.values()))
        is_field, fields = self._field_labels
        others = len(is_field) - (start in is_field)
        fields -= is_field.get(start, False)
        return fields >= 2 and 2 * fields >= others

    def technical(self) -> bool:
        """A technical text: it holds a fenced block, inline code, a stack frame, a log line or
        a docstring header, or two code-shaped tokens (not counting e-mail addresses, nor
        CamelCase words, which brands share)."""
        if self._technical is None:
            self._technical = bool(self._fence_at(0) is not None or self._fences) or any(
                self._line(m.start())[0] > m.start() or self._line(m.start())[1]
                for m in re.finditer(r"^", self.text, re.MULTILINE)
            )
            if not self._technical:
                found = 0
                for m in re.finditer(r"\S+", self.text):
                    tok = m.group()
                    # only tokens with code punctuation count: not e-mail addresses, nor CamelCase
                    # words alone, which brands share ("BlackRock")
                    if "@" in tok or not _CODE_CHAR.search(tok) or tok.strip(_STRIP + ".").isalnum():
                        continue
                    if code_token(tok):
                        found += 1
                        if found == 2:
                            self._technical = True
                            break
        return bool(self._technical)

    def _line_end(self, line_start: int) -> int:
        end = self.text.find("\n", line_start)
        return len(self.text) if end < 0 else end

    def _line(self, line_start: int) -> tuple[int, list[tuple[int, int]]]:
        """(end of the line's code prefix: all of a code line, a log prefix, or its start;
        the inline code and reST role spans of the line), absolute offsets, cached per line."""
        hit = self._lines.get(line_start)
        if hit is None:
            line_end = self._line_end(line_start)
            line = self.text[line_start:line_end]
            if _CODE_LINE.match(line) or _SECTION_LINE.match(line) or self._under_frame(line_start):
                code_end = line_end
            else:
                m = _LOG_PREFIX.match(line)
                code_end = line_start + (m.end() if m else 0)
            spans = [
                (line_start + m.start(), line_start + m.end())
                for rx in (_INLINE_CODE, _ROLE)
                for m in rx.finditer(line)
            ]
            hit = self._lines[line_start] = (code_end, spans)
        return hit

    def _under_frame(self, line_start: int) -> bool:
        """The source line printed under a stack frame."""
        if line_start == 0:
            return False
        prev_start = self.text.rfind("\n", 0, line_start - 1) + 1
        return _FRAME.match(self.text, prev_start, line_start) is not None

    # fenced blocks ---------------------------------------------------------------------------

    def _fence_at(self, pos: int) -> list[tuple[int, int]] | None:
        """The prose intervals (strings, comments) of the fenced block holding `pos`, or None."""
        if self._fences is None:
            self._fences = self._find_fences()
            self._starts = [b[0] for b in self._fences]
        i = bisect.bisect_right(self._starts, pos) - 1
        if i >= 0 and pos < self._fences[i][1]:
            return self._fences[i][2]
        return None

    def _find_fences(self) -> list[tuple[int, int, list[tuple[int, int]]]]:
        marks = [(m.start(), m.end(), m.group(1)) for m in _FENCE.finditer(self.text)]
        if not marks:
            return []
        blocks = []
        open_at: int | None = None
        # A chunk of a long text may start inside a block: a bare first fence followed by one
        # with a language closes a block that opened before the chunk.
        if not marks[0][2] and len(marks) > 1 and marks[1][2]:
            blocks.append((0, marks[0][0]))
            marks = marks[1:]
        for start, end, _info in marks:
            if open_at is None:
                line_end = self.text.find("\n", end)
                open_at = len(self.text) if line_end < 0 else line_end + 1
            else:
                blocks.append((open_at, start))
                open_at = None
        if open_at is not None:
            blocks.append((open_at, len(self.text)))
        return [(a, b, _prose_in_code(self.text, a, b)) for a, b in blocks]


_CODE_TOKENS = re.compile(r'"""|\'\'\'|"|\'|#|//|\n')


def _prose_in_code(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """String literals and comments of the code in text[start:end], as absolute intervals.

    A small lexer over quote, comment and newline marks: triple-quoted strings span lines, one
    quote ends at its match or the line end, `#` and `//` (not in "://") run to the line end. An
    apostrophe between two letters ("don't") is no quote."""
    out: list[tuple[int, int]] = []
    state: str | None = None  # the quote that opened the current string, or "#" in a comment
    opened = start
    for m in _CODE_TOKENS.finditer(text, start, end):
        tok, pos = m.group(), m.start()
        if state is None:
            if tok == "\n":
                continue
            if tok == "'" and pos > 0 and text[pos - 1].isalpha() and pos + 1 < end and text[pos + 1].isalpha():
                continue
            if tok == "//" and pos > 0 and text[pos - 1] == ":":
                continue
            state, opened = ("#" if tok in ("#", "//") else tok), pos
        elif state == "#":
            if tok == "\n":
                out.append((opened, pos))
                state = None
        elif tok == state and text[pos - 1] != "\\":
            out.append((opened, m.end()))
            state = None
        elif tok == "\n" and state in ('"', "'"):
            out.append((opened, pos))
            state = None
    if state is not None:
        out.append((opened, end))
    return out


#: Entity types found by NER or gazetteers, which code words are mistaken for.
NAMED_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION"})
#: Recognizers that find them with no cue: spaCy, the token classifier, the name and country gazetteers.
NER = frozenset({"SpacyRecognizer", RECOGNIZER_NAME})
UNCUED = NER | {"NameGazetteerRecognizer", "CountryRecognizer"}
#: Recognizers that find them after a cue ("my name is", "Dear", "lives in"): kept in code too.
CUED = frozenset({"ContextNameRecognizer", "ContextLocationRecognizer"})


_LINE_OPENING = re.compile(r"[ \t]*(?:(?:[#;>*+\-]{1,3}|//|\d{1,3}[.)])[ \t]*)?")


def _technical_word(code: CodeContext, start: int, end: int) -> bool:
    """spaCy's hit in a technical text that reads as a word of the trade, not a name: none of its
    words is a known given or family name or a country, and either all are English words ("Proxy Support",
    "Windows", "Domains") or it is one word opening a line or sentence before a colon or a
    lower-case word ("# Uncomment the next line", "Retains insertion order.", "Default: …")."""
    text = code.text
    words = text[start:end].split()
    names, countries = person_names(), country_names()
    if not words or any(w in names for w in words) or not code.technical():
        return False
    if text[start:end] in countries or any(w.strip(_STRIP + ".") in countries for w in words):
        return False
    if all(_english(w) for w in words):
        return True
    if len(words) > 1 or not (text[end : end + 1] == ":" or re.match(r" [a-z]", text[end : end + 2])):
        return False
    line_start = max(text.rfind("\n", 0, start) + 1, start - 40)  # a line opening is short
    before = text[line_start:start]
    return (
        text.rfind("\n", 0, start) + 1 >= start - 40 and _LINE_OPENING.fullmatch(before) is not None
    ) or before.rstrip()[-1:] in (".", "!", "?")


def _english(word: str) -> bool:
    """An English word of the spaCy lexicon, also inflected ("Domains", "Retains", "Raised")."""
    w = word.strip(_STRIP + ".").lower()
    forms = {w}
    for suffix, repl in (("s", ""), ("es", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"), ("ies", "y")):
        if w.endswith(suffix) and len(w) > len(suffix) + 2:
            forms.add(w[: -len(suffix)] + repl)
    return not forms.isdisjoint(english_words())


def _local_ip(value: str) -> bool:
    try:
        ip = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _recognizer(result: Any) -> str:
    return str((result.recognition_metadata or {}).get("recognizer_name", ""))


def code_hits(text: str, results: Sequence[Any]) -> set[int]:
    """Indices of Presidio results that code, logs and machines' own addresses produced, to drop:

    * PERSON, LOCATION, NRP or ORGANIZATION hits of an uncued recognizer whose every word lies in
      code or that is a field's name ("Commandline:" among "Start-Date:" and "Upgrade:", a
      heading "Fields:"), with no cue recognizer's hit overlapping;
    * such hits of a cue recognizer that lie in a code region (a fenced block's code, inline
      code, a stack frame, a log prefix, a docstring header such as "Arguments:", which the
      dialogue-label cue reads as a speaker) or on a field's name;
    * phone numbers inside a date-and-time stamp ("2025-06-24 14" of "2025-06-24 14:39:44");
    * loopback and unspecified IP addresses (127.0.0.1, ::1, 0.0.0.0): every machine's own,
      they identify no one.
    """
    named = [i for i, r in enumerate(results) if r.entity_type in NAMED_ENTITIES]
    phones = [i for i, r in enumerate(results) if r.entity_type == "PHONE_NUMBER"]
    out = {i for i, r in enumerate(results) if r.entity_type == "IP_ADDRESS" and _local_ip(text[r.start : r.end])}
    if not named and not phones:
        return out
    code = CodeContext(text)
    cues = [(r.start, r.end) for r in results if _recognizer(r) in CUED]
    for i in named:
        r, name = results[i], _recognizer(results[i])
        if name in CUED:
            if (
                code.covers(r.start, r.end, tokens=False)
                or code.after_field(r.start)
                or code.field_label(r.start, r.end)
            ):
                out.add(i)
        elif (
            name in UNCUED
            and not any(a < r.end and r.start < b for a, b in cues)
            and (
                code.covers(r.start, r.end)
                or code.field_label(r.start, r.end)
                or (name in NER and _technical_word(code, r.start, r.end))
            )
        ):
            out.add(i)
    out.update(i for i in phones if code.in_timestamp(results[i].start, results[i].end))
    return out
