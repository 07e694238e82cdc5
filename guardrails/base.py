"""The contract every guardrail implements, and the typed decision it records.

A guardrail sees the parsed request before any model does (`scan_input`, which may rewrite the
body in place and returns a `Verdict`), may return an `OutputFilter` that rewrites the answer: whole
(`text`) or streamed (`feed`/`flush`, which may hold back a few characters between chunks), and may
judge the whole answer (`scan_output`). Guardrails never raise HTTP errors or write metrics: the
edge (proxy/) maps verdicts to responses and counts what happened.
"""

from __future__ import annotations

from collections.abc import Callable
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
    #: unknown top-level fields kept under `request.unknown_fields: scan` (walked like known text)
    scanned_fields: tuple[str, ...] = ()
    # What the PII guardrail learnt; raw values live in memory only, for this request.
    pii_checked: bool = False  # the body holds only masked text now (the audit may record it)
    pii_detected: set[str] = field(default_factory=set)
    pii_allowed_values: dict[str, list[str]] = field(default_factory=dict)  # residency may still redact them
    pii_map: dict[str, str] = field(default_factory=dict)  # placeholder -> original value
    pii_masked_text: str = ""  # the request's text parts as the model receives them (masked)
    pii_counts: dict[str, int] = field(default_factory=dict)
    #: the answer scans of this request (they remember the values they replaced, for the audit record)
    answer_ner: list[Any] = field(default_factory=list)
    residency_recorded: bool = False


VerdictAction = Literal["allow", "block", "refuse", "unavailable"]


@dataclass(frozen=True)
class Verdict:
    """A guardrail's answer on a request or an answer. The HTTP edge maps it to a response:
    block -> 400 (`code`), refuse -> a refusal answer (or 400 when not `as_completion`),
    unavailable -> 503. `message` is for the caller and never quotes request text."""

    action: VerdictAction = "allow"
    rule_id: str = ""
    message: str = ""
    code: str | None = None
    refusal: str | None = None
    as_completion: bool = False

    @property
    def allowed(self) -> bool:
        return self.action == "allow"


ALLOW = Verdict()


class OutputFilter(Protocol):
    def text(self, value: str) -> str:
        """Rewrite a whole answer (content or tool-call arguments)."""

    def feed(self, delta: str) -> str:
        """Take a streamed piece; return the text that is safe to emit now."""

    def flush(self) -> str:
        """Return whatever was held back, at the end of a stream."""


class Guardrail:
    """What every guardrail implements (in the spirit of LLM Guard's input and output scanners).
    The defaults do nothing, so a guardrail overrides only the stages it takes part in, and the
    pipeline calls every stage of every guardrail directly (no hook is looked up by name)."""

    name: str = "guardrail"
    #: never rewrites the body: may run concurrently with the guardrails that do
    read_only: bool = False

    def bind_redis(self, client: Any) -> None:
        """Called once the gateway's Redis is up."""

    def close(self) -> None:
        """Called when the gateway stops."""

    async def scan_input(self, ctx: GuardContext, kind: str, body: dict[str, Any]) -> Verdict:
        """Inspect (and, unless read_only, rewrite in place) a parsed request body."""
        return ALLOW

    def output_filter(self, ctx: GuardContext) -> OutputFilter | None:
        """A fresh filter for this request's answer (whole, or streamed as feed/flush), or None."""
        return None

    def wants_output_scan(self, ctx: GuardContext) -> bool:
        """Whether scan_output has anything to check for this request (streams then collect the answer)."""
        return False

    async def scan_output(self, ctx: GuardContext, text: str) -> Verdict:
        """Judge a whole answer, as the caller sees it."""
        return ALLOW

    def routes_checked(self, ctx: GuardContext) -> bool:
        """Whether scan_route has anything to decide for this request."""
        return False

    def scan_route(
        self, ctx: GuardContext, backend_id: str, hosted: bool, body: dict[str, Any]
    ) -> tuple[Verdict, dict[str, Any]]:
        """What one deployment may receive of the masked body, just before it is called: a verdict,
        and the body to send (the same, or a rewritten copy)."""
        return ALLOW, body

    def answered(self, ctx: GuardContext, texts: list[str]) -> None:
        """The caller got these answers (they come back as history in the next turn)."""

    def audit_redactor(self, ctx: GuardContext) -> Callable[[str], str] | None:
        """Rewrites the model's raw answer for the audit record, or None."""
        return None
