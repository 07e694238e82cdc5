"""The stand-in's tokenizer: Mixtral's SentencePiece vocabulary as a `tokenizers` BPE file.

`data/mixtral_tokenizer.json.gz` was converted from the `tokenizer.model.v1` that the
mistral_common wheel ships (Mixtral 8x7B's tokenizer); it matches SentencePiece's ids on ordinary
text and may split long whitespace runs differently. Any other `tokenizer.json` can be given.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

DEFAULT_TOKENIZER = Path(__file__).parent / "data" / "mixtral_tokenizer.json.gz"


@lru_cache(maxsize=4)
def load_tokenizer(path: str | None = None) -> Tokenizer:
    p = Path(path) if path else DEFAULT_TOKENIZER
    raw = p.read_bytes()
    if p.suffix == ".gz":
        raw = gzip.decompress(raw)
    return Tokenizer.from_str(raw.decode())


def render_mixtral_chat(messages: list[dict]) -> str:
    """Mixtral-Instruct's chat template: system text is folded into the first [INST] block."""
    out = ["<s>"]
    pending_system: list[str] = []
    for m in messages:
        role, text = m.get("role"), message_text(m)
        if role in ("system", "developer"):
            pending_system.append(text)
        elif role in ("user", "tool", "function"):
            body = "\n\n".join([*pending_system, text]) if pending_system else text
            pending_system = []
            out.append(f"[INST] {body} [/INST]")
        else:  # assistant
            calls = m.get("tool_calls") or []
            extra = "".join(
                f"[TOOL_CALLS]{c.get('function', {}).get('name')}{c.get('function', {}).get('arguments')}"
                for c in calls
                if isinstance(c, dict)
            )
            out.append(f"{text}{extra}</s>")
    if pending_system:
        out.append(f"[INST] {chr(10).join(pending_system)} [/INST]")
    return "".join(out)


def message_text(m: dict) -> str:
    """Text of a message whose content is a string or an array of parts."""
    content = m.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("text", "input_text")
        )
    return str(content)
