"""JSON Schema contracts for an app's answers.

The schema is forwarded as `response_format: json_schema`, so SGLang constrains decoding to it
(xgrammar/outlines); the answer is still validated here, because a hosted fallback or a truncated
answer may not conform. Feedback for a re-ask names paths and schema keywords only, never values
from the answer, since the answer may hold restored personal data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from policies.models import SchemaContract
from policies.store import PolicyStore

from .base import ALLOW, GuardContext, Guardrail, Verdict


@dataclass(frozen=True)
class Violation:
    path: str  # JSONPath-like: $.items[2].price
    problem: str  # "is not of type 'number'", "is a required property" ... without the value

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


class ContractChecker:
    def __init__(self, contract: SchemaContract) -> None:
        self.contract = contract
        self.validator = Draft202012Validator(contract.json_schema)

    def response_format(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {"name": self.contract.name, "schema": self.contract.json_schema, "strict": True},
        }

    def prepare(self, body: dict[str, Any]) -> None:
        """Ask the backend for schema-constrained output, unless the caller already gave a schema."""
        rf = body.get("response_format")
        if not (isinstance(rf, dict) and rf.get("type") == "json_schema"):
            body["response_format"] = self.response_format()

    def violations(self, text: str) -> list[Violation]:
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            return [Violation("$", "is not valid JSON")]
        out = []
        for e in sorted(self.validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path))):
            if e.validator == "required":
                missing = e.message.split("'")[1] if e.message.count("'") >= 2 else "?"
                out.append(Violation(_path([*e.absolute_path, missing]), "is a required property"))
            elif e.validator == "additionalProperties":
                out.append(Violation(_path(e.absolute_path), "has properties the schema does not allow"))
            else:
                out.append(
                    Violation(
                        _path(e.absolute_path), f"violates '{e.validator}': {json.dumps(e.validator_value)[:120]}"
                    )
                )
        return out[:10]

    @staticmethod
    def reask(violations: list[Violation]) -> str:
        listed = "; ".join(map(str, violations))
        return (
            "Your previous answer does not match the required JSON Schema: "
            + listed
            + ". Answer again with only a JSON value that matches the schema."
        )


class ContractGuardrail(Guardrail):
    """The policy's schema contract as a guardrail: its input stage asks the backend for
    schema-constrained output; `checker()` gives the edge what it validates answers with, since a
    violation there may mean calling the backend again (a re-ask), which only the edge can do."""

    name = "schema"

    def __init__(self, store: PolicyStore) -> None:
        self.store = store
        self._checkers: dict[tuple[str, str], ContractChecker] = {}

    def checker(self, ctx: GuardContext, kind: str) -> ContractChecker | None:
        """The contract that applies to this request's answers (chat only), compiled once per version."""
        lp = self.store.get(ctx.policy)
        if lp.policy.contract is None or kind != "chat":
            return None
        key = (lp.policy.name, lp.version)
        c = self._checkers.get(key)
        if c is None:
            c = self._checkers[key] = ContractChecker(lp.policy.contract)
        return c

    def wants_output_scan(self, ctx: GuardContext) -> bool:
        return False  # answers are validated by the edge, which may re-ask

    async def scan_input(self, ctx: GuardContext, kind: str, body: dict[str, Any]) -> Verdict:
        checker = self.checker(ctx, kind)
        if checker is not None:
            checker.prepare(body)
        return ALLOW
