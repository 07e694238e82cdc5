"""The contract every guardrail implements, and the typed decision it records.

A guardrail sees the request before any model does (`check_input`, which may rewrite the body in
place or raise to refuse it) and may return an `OutputFilter` that rewrites the answer: whole
(`text`) or streamed (`feed`/`flush`, which may hold back a few characters between chunks).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Action = Literal["allow", "mask", "redact", "hash", "block", "restore", "monitor"]


@dataclass(frozen=True)
class Decision:
    """One rule's verdict on one request, as the audit log stores it (never raw values)."""

    guardrail: str
    rule_id: str
    action: str
    score: float = 1.0
    mode: Literal["enforce", "monitor"] = "enforce"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class GuardContext:
    """What the guardrails of one request share: who calls, which conversation, what was decided."""

    key_id: str
    app: str
    policy: str
    request_id: str
    conversation_id: str | None = None
    decisions: list[Decision] = field(default_factory=list)
    backend: str | None = None
    state: dict[str, Any] = field(default_factory=dict)


class OutputFilter(Protocol):
    def text(self, value: str) -> str:
        """Rewrite a whole answer (content or tool-call arguments)."""

    def feed(self, delta: str) -> str:
        """Take a streamed piece; return the text that is safe to emit now."""

    def flush(self) -> str:
        """Return whatever was held back, at the end of a stream."""


class Guardrail(Protocol):
    name: str

    async def check_input(self, ctx: GuardContext, kind: str, body: dict[str, Any]) -> None:
        """Inspect (and possibly rewrite) the request body; raise a GatewayError to refuse it."""

    def output_filter(self, ctx: GuardContext) -> OutputFilter | None:
        """A fresh filter for this request's answer, or None to leave answers alone."""
