"""Helpers shared by the scripts that build the untuned PII sets: inline labels to offsets, valid
check digits for card numbers and IBANs, and writing JSONL records.

A record is `{"text": ..., "spans": [{"type", "value", "start", "end"}], "source": ...}`; a clean
record has no spans. The detectors never read these files: only bench/pii_quality.py does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABEL = re.compile(r"\[\[([A-Z_]+):(.+?)\]\]")


def luhn_complete(number: str) -> str:
    """`number` with its last "?" replaced by the Luhn check digit (separators kept)."""
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):  # the check digit will sit right of these
        x = d * 2 if i % 2 == 0 else d
        total += x - 9 if x > 9 else x
    return number.replace("?", str((10 - total % 10) % 10), 1)


def iban_complete(iban: str) -> str:
    """`iban` with "??" replaced by the ISO 13616 mod-97 check digits (spacing kept)."""
    compact = iban.replace(" ", "")
    country, bban = compact[:2], compact[4:]
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return iban.replace("??", f"{98 - num % 97:02d}", 1)


def complete_value(kind: str, value: str) -> str:
    if kind == "IBAN_CODE" and "??" in value:
        return iban_complete(value)
    if kind == "CREDIT_CARD" and value.endswith("?"):
        return luhn_complete(value)
    return value


def from_markup(marked: str, source: str) -> dict:
    """A record from text with inline `[[TYPE:value]]` labels."""
    out: list[str] = []
    spans: list[dict] = []
    pos = 0
    length = 0
    for m in LABEL.finditer(marked):
        plain = marked[pos : m.start()]
        out.append(plain)
        length += len(plain)
        kind, value = m.group(1), complete_value(m.group(1), m.group(2))
        spans.append({"type": kind, "value": value, "start": length, "end": length + len(value)})
        out.append(value)
        length += len(value)
        pos = m.end()
    out.append(marked[pos:])
    text = "".join(out)
    for s in spans:
        assert text[s["start"] : s["end"]] == s["value"], s
    return {"text": text, "spans": spans, "source": source}


def write_jsonl(name: str, records: list[dict]) -> Path:
    path = HERE / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path
