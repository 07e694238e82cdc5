"""Policy regexes run on RE2, a linear-time engine: no pattern a policy author writes can make a
match take exponential time (`(a+)+$` on "aaaa…b" is a few microseconds, not minutes)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a rejected pattern is reported by the policy loader, not on stderr


def _inline_flags(flags: int) -> str:
    out = "".join(c for f, c in ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s")) if flags & f)
    return f"(?{out})" if out else ""


def compile_linear(pattern: str, flags: int = 0) -> Any:
    """The pattern compiled by RE2; ValueError when it needs what RE2 does not have
    (backreferences, lookaround), which is what makes backtracking engines exponential."""
    try:
        return re2.compile(_inline_flags(flags) + pattern, _OPTIONS)
    except re2.error as exc:
        raise ValueError(f"the linear-time engine (RE2) cannot run {pattern!r}: {exc}") from None


class LinearPattern:
    """What Presidio's PatternRecognizer calls on a compiled pattern (`finditer(text, timeout=)`),
    on RE2: custom recognizers from policies cannot stall an analysis thread (and with it, through
    the GIL, the event loop)."""

    def __init__(self, pattern: str, flags: int) -> None:
        self._compiled = compile_linear(pattern, flags)

    def finditer(self, text: str, timeout: float | None = None) -> Iterator[Any]:
        return iter(self._compiled.finditer(text))
