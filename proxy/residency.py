"""Data residency: what a hosted backend may receive, decided per backend just before the call.

When the PII guardrail found entity types (before masking) that the policy does not let leave
the network, a hosted fallback is refused (503 with the reason) or gets a copy in which those
types are irreversibly redacted, as the policy says.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from guardrails.base import Decision, GuardContext
from guardrails.request_shapes import text_slots
from policies.loader import LoadedPolicy

from . import errors
from .backends import Backend

_TYPED_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_\d+>")


def residency_gate(
    ctx: GuardContext, lp: LoadedPolicy, hosted: set[str]
) -> Callable[[Backend, dict[str, Any]], dict[str, Any]] | None:
    """The router's gate for this request, or None when the policy lets everything leave."""
    res = lp.policy.residency
    if res.hosted_allowed_entities is None or not hosted:
        return None
    allowed = set(res.hosted_allowed_entities)

    def gate(backend: Backend, body: dict[str, Any]) -> dict[str, Any]:
        if backend.id not in hosted:
            return body
        bad = sorted(set(ctx.pii_detected) - allowed)
        if not bad:
            return body
        action = "monitor" if res.mode == "monitor" else ("block" if res.on_violation == "refuse" else "redact")
        if not ctx.residency_recorded:
            ctx.residency_recorded = True
            ctx.decisions.append(
                Decision(
                    "residency", "residency.hosted", action, 1.0, res.mode, {"entities": bad, "backend": backend.id}
                )
            )
        if action == "monitor":
            return body
        if action == "block":
            raise errors.ResidencyRefused(
                f"Fallback to hosted backend '{backend.id}' refused by policy '{lp.policy.name}': "
                f"{', '.join(bad)} may not leave the network"
            )
        return _redact_for_hosted(body, set(bad), ctx.pii_allowed_values, ctx.scanned_fields)

    return gate


def _redact_for_hosted(
    body: dict[str, Any], entities: set[str], raw_values: dict[str, list[str]], scanned: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A copy of a (masked) body in which the given entity types are irreversibly redacted."""
    out = copy.deepcopy(body)
    values = sorted({v for e in entities for v in raw_values.get(e, ())}, key=len, reverse=True)

    def fix(text: str) -> str:
        text = _TYPED_PLACEHOLDER.sub(
            lambda m: f"[REDACTED:{m.group(1)}]" if m.group(1) in entities else m.group(0), text
        )
        for v in values:
            text = text.replace(v, "[REDACTED]")
        return text

    for slot in text_slots("completions" if "prompt" in out else "chat", out, scanned):
        slot.write(fix(slot.text))
    return out
