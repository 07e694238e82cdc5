"""Data residency: what a hosted backend may receive, decided per backend just before the call.

When the PII guardrail found entity types (before masking) that the policy does not let leave
the network, a hosted deployment is refused (the edge answers 503 with the reason, and the router
tries no further hosted deployment) or gets a copy in which those types are irreversibly redacted,
as the policy says.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from policies.store import PolicyStore

from .base import ALLOW, Decision, GuardContext, Guardrail, Verdict
from .request_shapes import text_slots

_TYPED_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_\d+>")


class ResidencyGuardrail(Guardrail):
    name = "residency"
    read_only = True

    def __init__(self, store: PolicyStore) -> None:
        self.store = store

    def routes_checked(self, ctx: GuardContext) -> bool:
        return self.store.get(ctx.policy).policy.residency.hosted_allowed_entities is not None

    def scan_route(
        self, ctx: GuardContext, backend_id: str, hosted: bool, body: dict[str, Any]
    ) -> tuple[Verdict, dict[str, Any]]:
        lp = self.store.get(ctx.policy)
        res = lp.policy.residency
        if not hosted or res.hosted_allowed_entities is None:
            return ALLOW, body
        bad = sorted(set(ctx.pii_detected) - set(res.hosted_allowed_entities))
        if not bad:
            return ALLOW, body
        action = "monitor" if res.mode == "monitor" else ("block" if res.on_violation == "refuse" else "redact")
        if not ctx.residency_recorded:
            ctx.residency_recorded = True
            detail = {"entities": bad, "backend": backend_id}
            ctx.decisions.append(Decision("residency", "residency.hosted", action, 1.0, res.mode, detail))
        if action == "monitor":
            return ALLOW, body
        if action == "block":
            message = (
                f"Fallback to hosted backend '{backend_id}' refused by policy '{lp.policy.name}': "
                f"{', '.join(bad)} may not leave the network"
            )
            return Verdict("block", "residency.hosted", message, "residency_refused"), body
        return ALLOW, redact_for_hosted(body, set(bad), ctx.pii_allowed_values, ctx.scanned_fields)


def redact_for_hosted(
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
