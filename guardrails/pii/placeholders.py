"""Placeholder syntax, and restoring placeholders in whole and streamed answers.

Placeholders look like `<PERSON_1>`. Text the user typed that already looks like one is itself
masked (as `<LITERAL_n>`), so a placeholder in a prompt can only be one the gateway made, and a
typed look-alike comes back to its author exactly as typed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
#: A suffix of streamed text that could still grow into a placeholder.
_PARTIAL = re.compile(r"<[A-Z0-9_]*$")
MAX_PLACEHOLDER_LEN = 48


def restore_text(text: str, mapping: dict[str, str]) -> str:
    if "<" not in text:
        return text
    return PLACEHOLDER.sub(lambda m: mapping.get(m.group(), m.group()), text)


class StreamRestorer:
    """Restores placeholders in streamed text, holding back only a possible placeholder prefix.

    `scan` (optional) rewrites each released segment before restore, e.g. to redact PII the model
    invented; it must leave placeholders alone.
    """

    def __init__(
        self,
        mapping: dict[str, str],
        scan: Callable[[str], str] | None = None,
        hold: Callable[[str], int] | None = None,
    ) -> None:
        self.mapping = mapping
        self.scan = scan
        self.hold = hold
        self.buf = ""

    def _split(self, text: str) -> int:
        cut = len(text)
        lt = text.rfind("<")
        if lt != -1 and len(text) - lt <= MAX_PLACEHOLDER_LEN and _PARTIAL.match(text, lt):
            cut = lt
        if self.hold is not None:
            cut = min(cut, self.hold(text[:cut]))
        return cut

    def _release(self, seg: str) -> str:
        if self.scan is not None and seg:
            seg = self.scan(seg)
        return restore_text(seg, self.mapping)

    def text(self, value: str) -> str:
        return self._release(value)

    def feed(self, delta: str) -> str:
        self.buf += delta
        cut = self._split(self.buf)
        out, self.buf = self.buf[:cut], self.buf[cut:]
        return self._release(out)

    def flush(self) -> str:
        out, self.buf = self.buf, ""
        return self._release(out)
