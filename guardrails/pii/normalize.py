"""Text normalization before PII analysis, with an exact map back to the caller's offsets.

Why: the recognizers match plain characters. A zero-width space, word joiner, soft hyphen, BOM
or bidi control inside an e-mail address, card, phone, IBAN or SSN, or a fullwidth "＠", "．"
or digit, is invisible or looks the same to a reader and to the model, yet breaks every regex,
so the value reached the model raw (and a `block` rule was bypassed). The analyzer therefore
looks at a normalized copy of the text:

* Unicode format characters (category Cf: U+200B-U+200D, U+2060, U+00AD, U+FEFF, the bidi
  controls U+200E/F, U+202A-U+202E, U+2066-U+2069, tag characters, ...) are removed;
* every other character is replaced by its NFKC form, one character at a time (fullwidth and
  mathematical letters and digits, ligatures, compatibility spaces, small and fullwidth
  punctuation). Per character, not per string, so each output character has one source.

The spans it finds are mapped back with `Normalized.to_original`, so the guardrail masks the
caller's own text and the mask swallows the hidden characters inside a value as well.

This runs on every text of every request. ASCII text (most of them) is returned as is, with no
per-character work; other text costs one C-level `str.translate` over a lazily filled table, and
Python work only per character that actually changes.
"""

from __future__ import annotations

import bisect
import unicodedata

__all__ = ["NORMALIZATION_VERSION", "Normalized", "normalize"]

#: Changes when normalization does: analysis caches keyed on raw text include it.
NORMALIZATION_VERSION = f"cf-nfkc1-u{unicodedata.unidata_version}"

_CHANGED = "\x00"  # what the marking table turns a changing character into (NUL itself counts as one)
_TABLE_LIMIT = 1 << 16  # distinct characters remembered; beyond that each lookup is recomputed


def _replacement(ch: str) -> str:
    """What one character becomes: nothing for a format character, else its NFKC form."""
    if unicodedata.category(ch) == "Cf":
        return ""
    return unicodedata.normalize("NFKC", ch)


class _Replacements(dict[str, str]):
    """character -> replacement, computed on first sight."""

    def __missing__(self, ch: str) -> str:
        r = _replacement(ch)
        if len(self) < _TABLE_LIMIT:
            self[ch] = r
        return r


class _Marks(dict[int, str | int]):
    """str.translate table: code point -> NUL for a character that normalization changes,
    -> itself for one it keeps. Filled on first sight, so later lookups are C-level dict hits."""

    def __missing__(self, code: int) -> str | int:
        ch = chr(code)
        value: str | int = _CHANGED if code == 0 or _REPLACEMENTS[ch] != ch else code
        if len(self) < _TABLE_LIMIT:
            self[code] = value
        return value


_REPLACEMENTS = _Replacements()
_MARKS = _Marks()


class Normalized:
    """A normalized text and the map from its offsets back to the original text's.

    The map is a list of segments, each starting at a normalized offset: a linear one maps its
    characters one to one onto consecutive original characters; a collapsed one holds the
    several characters that one original character became (a ligature, "½"), all mapped to it.
    `_starts` is None when offsets are unchanged (identity map).
    """

    __slots__ = ("text", "original", "_starts", "_origins", "_collapsed")

    def __init__(
        self,
        text: str,
        original: str,
        starts: list[int] | None = None,
        origins: list[int] | None = None,
        collapsed: list[bool] | None = None,
    ) -> None:
        self.text = text
        self.original = original
        self._starts = starts
        self._origins = origins
        self._collapsed = collapsed

    @property
    def identity(self) -> bool:
        """True when offsets are the same in both texts (nothing removed or expanded), so spans
        need no mapping; the texts may still differ by one-for-one substitutions."""
        return self._starts is None

    def original_index(self, i: int) -> int:
        """Index in the original text of the character that normalized character `i` came from."""
        if self._starts is None:
            return i
        assert self._origins is not None and self._collapsed is not None
        if not 0 <= i < len(self.text):
            raise IndexError(i)
        j = bisect.bisect_right(self._starts, i) - 1
        return self._origins[j] if self._collapsed[j] else self._origins[j] + i - self._starts[j]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """The original span that normalized text[start:end] came from: from the source of its
        first character to the end of the source of its last, so removed format characters
        inside it are covered (those just outside it are not), and a character that expanded to
        several is covered whole even if the span holds only part of its expansion. An empty span
        maps to an empty span at the source of the character it precedes."""
        if self._starts is None:
            return start, end
        if end <= start:
            p = self.original_index(start) if start < len(self.text) else len(self.original)
            return p, p
        return self.original_index(start), self.original_index(end - 1) + 1

    def __repr__(self) -> str:
        return f"Normalized({self.text!r}, identity={self.identity})"


def normalize(text: str) -> Normalized:
    """`text` without format characters and with each character in NFKC form, with the offset
    map back to `text` (see the module docstring for why). ASCII text is returned unchanged."""
    if text.isascii():
        return Normalized(text, text)
    marked = text.translate(_MARKS)
    p = marked.find(_CHANGED)
    if p < 0:
        return Normalized(text, text)
    starts, origins, collapsed = [0], [0], [False]

    def segment(n_start: int, o_start: int, whole: bool) -> None:
        if starts[-1] == n_start and not collapsed[-1]:  # the last segment is empty: reuse it
            origins[-1], collapsed[-1] = o_start, whole
        else:
            starts.append(n_start)
            origins.append(o_start)
            collapsed.append(whole)

    out: list[str] = []
    n = 0  # length of the normalized text so far
    prev = 0
    shifted = False  # a character was removed or expanded: offsets differ from here on
    while p >= 0:
        if p > prev:
            out.append(text[prev:p])
            n += p - prev
        r = _REPLACEMENTS[text[p]]
        if len(r) == 1:  # one for one: the current linear segment goes on
            out.append(r)
            n += 1
        elif not r:  # removed: the next character starts a new linear segment
            segment(n, p + 1, False)
            shifted = True
        else:  # expanded: its characters all map to it
            segment(n, p, True)
            out.append(r)
            n += len(r)
            segment(n, p + 1, False)
            shifted = True
        prev = p + 1
        p = marked.find(_CHANGED, prev)
    out.append(text[prev:])
    if not shifted:  # substitutions only (fullwidth forms, compatibility spaces): same offsets
        return Normalized("".join(out), text)
    return Normalized("".join(out), text, starts, origins, collapsed)
