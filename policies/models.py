"""Policy files as typed models. `mixguard policy schema` writes policies/schema.json from these."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PiiAction = Literal["mask", "redact", "hash", "block", "allow"]
Mode = Literal["enforce", "monitor"]
RULE_NAME = r"^[A-Za-z0-9_.-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_regex(v: str) -> str:
    """A policy regex must compile, and compile on RE2 (linear time: no backreferences or
    lookaround), which is the engine the guardrails run it on."""
    try:
        re.compile(v)
    except re.error as exc:
        raise ValueError(f"invalid regex {v!r}: {exc}") from None
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(v, options)
    except re2.error:
        raise ValueError(
            f"regex {v!r} needs backtracking (backreferences or lookaround): policies use a linear-time "
            "engine (RE2), rewrite it without them"
        ) from None
    return v


class EntityRule(_Strict):
    action: PiiAction = "mask"
    mode: Mode | None = Field(default=None, description="monitor: record what would happen, change nothing")
    threshold: float | None = Field(default=None, ge=0, le=1, description="minimum score; default: pii.score_threshold")


class PatternSpec(_Strict):
    name: str
    regex: str
    score: float = Field(default=0.8, ge=0, le=1)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        return _check_regex(v)


class CustomRecognizer(_Strict):
    """A recognizer without Python: regex patterns (optionally validated) and/or a deny list."""

    name: str
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    patterns: list[PatternSpec] = Field(default_factory=list)
    deny_list: list[str] = Field(default_factory=list)
    context: list[str] = Field(default_factory=list)
    validate_with: Literal["none", "luhn", "iban_mod97"] = "none"
    action: PiiAction = "mask"


class PiiPolicy(_Strict):
    enabled: bool = True
    score_threshold: float = Field(default=0.5, ge=0, le=1)
    default_action: PiiAction = "mask"
    entities: dict[str, EntityRule | PiiAction] = Field(default_factory=dict)
    allow_list: list[str] = Field(
        default_factory=list, description="values never treated as PII (exact, case-insensitive)"
    )
    recognizers: list[CustomRecognizer] = Field(default_factory=list)
    enable_presidio_recognizers: list[str] = Field(
        default_factory=list, description="extra Presidio recognizers by class name"
    )
    restore: bool = True
    restore_on_fallback: bool = True
    output_action: Literal["redact", "mask", "allow"] = Field(
        default="redact",
        description="what becomes of PII the model writes in its answer (invented, or repeated from an allowed "
        "context): redact -> [REDACTED:TYPE], mask -> <TYPE>, allow -> kept; placeholders are restored either way",
    )
    output_entities: list[str] = Field(
        default_factory=lambda: [
            "PERSON",
            "STREET_ADDRESS",
            "EMAIL_ADDRESS",
            "PHONE_NUMBER",
            "CREDIT_CARD",
            "IBAN_CODE",
            "US_SSN",
            "IP_ADDRESS",
        ],
        description="entity types output_action applies to in answers: structured identifiers by pattern as "
        "text streams, names, places and addresses (PERSON, LOCATION, STREET_ADDRESS, ...) by the analyzer "
        "with NER, off the event loop; values in allow_list are kept",
    )
    analyze_timeout_s: float = Field(default=10.0, gt=0)
    mode: Mode = Field(default="enforce", description="default mode of every entity rule")

    def rule(self, entity: str) -> EntityRule:
        r = self.entities.get(entity)
        if r is None:
            custom = next((c for c in self.recognizers if c.entity == entity), None)
            action = custom.action if custom is not None else self.default_action
            return EntityRule(action=action, threshold=self.score_threshold, mode=self.mode)
        if isinstance(r, str):
            return EntityRule(action=r, threshold=self.score_threshold, mode=self.mode)
        return EntityRule(
            action=r.action,
            threshold=self.score_threshold if r.threshold is None else r.threshold,
            mode=r.mode or self.mode,
        )


class TopicRule(_Strict):
    """A topic, matched by keywords/regex (score 1.0) or by meaning (cosine similarity to examples)."""

    name: str = Field(pattern=RULE_NAME)
    description: str = ""
    examples: list[str] = Field(default_factory=list, description="prompts on this topic, for semantic matching")
    keywords: list[str] = Field(
        default_factory=list,
        description="whole words or phrases, case-insensitive; in a rule with examples, a keyword inside "
        "a short quoted phrase is a mention and the examples decide",
    )
    regex: list[str] = Field(default_factory=list)
    threshold: float = Field(default=0.55, ge=0, le=1, description="minimum cosine similarity to an example")
    mode: Mode | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        return [_check_regex(r) for r in v]


class Refusal(_Strict):
    style: Literal["completion", "error"] = Field(
        default="completion", description="completion: an answer with finish_reason content_filter; error: HTTP 400"
    )
    message: str = "I can't help with that request: it is outside what this assistant may discuss."


class TopicPolicy(_Strict):
    mode: Mode = "enforce"
    deny: list[TopicRule] = Field(default_factory=list)
    allow: list[TopicRule] = Field(
        default_factory=list, description="if given, a prompt must match one of these or it is off-topic"
    )
    check_output: bool = Field(default=False, description="also check the model's answer against deny rules")
    neutral_examples: list[str] = Field(
        default_factory=list,
        description="prompts this app should answer; a deny rule's semantic match counts only if the prompt "
        "is closer to the rule's examples than to these (plus neutral_margin)",
    )
    neutral_margin: float = Field(default=0.0, ge=-1, le=1)
    semantic_method: Literal["classifier", "similarity"] = Field(
        default="classifier",
        description="classifier: a small neural network (one hidden layer) trained at load time on the deny rules' examples and "
        "neutral_examples (thresholds are probabilities; needs neutral_examples); similarity: "
        "highest cosine similarity to a rule's examples (thresholds are similarities)",
    )
    refusal: Refusal = Field(default_factory=Refusal)

    @property
    def empty(self) -> bool:
        return not self.deny and not self.allow


class SchemaContract(_Strict):
    """The app's answers must be JSON matching this schema."""

    name: str = Field(default="contract", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    json_schema: dict[str, Any] = Field(description="a JSON Schema (draft 2020-12)")
    max_retries: int = Field(default=2, ge=0, le=5, description="re-asks with the validation error")
    mode: Mode = "enforce"

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(v)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return v


class Residency(_Strict):
    """Which data may leave the network (reach a hosted fallback), even masked."""

    hosted_allowed_entities: list[str] | None = Field(
        default=None, description="entity types that may reach hosted providers; null: all"
    )
    on_violation: Literal["refuse", "redact"] = Field(
        default="refuse", description="refuse: 503 instead of the fallback; redact: irreversibly redact them"
    )
    mode: Mode = "enforce"


class AuditPolicy(_Strict):
    content: Literal["full", "truncated", "off"] = Field(
        default="truncated", description="how much of the masked prompt and answer the audit record keeps"
    )
    truncate_chars: int = Field(default=500, ge=16)
    on_unavailable: Literal["fail_open", "fail_closed"] = Field(
        default="fail_open", description="when the audit store is down: keep serving (spool) or refuse (503)"
    )


class RequestPolicy(_Strict):
    """How the gateway treats request fields it does not know."""

    unknown_fields: Literal["drop", "reject", "scan"] = Field(
        default="drop",
        description="drop: remove fields the gateway does not know before forwarding; reject: answer 400 naming the "
        "field; scan: forward them after masking the text inside. Fields that steer the connection "
        "(api_base, base_url, api_key, extra_headers, ...) are never forwarded, whatever this says",
    )
    max_messages: int = Field(
        default=2048, ge=1, description="messages (or Responses input items) per request; more: 413"
    )
    max_text_chars: int = Field(
        default=1_000_000, ge=1, description="characters of text in all text-bearing fields of a request; more: 413"
    )


class PolicyTest(_Strict):
    """A test case the security team keeps with the policy: `mixguard policy test DIR` runs it."""

    name: str | None = None
    input: str | None = Field(default=None, description="a user prompt")
    output: str | None = Field(default=None, description="a model answer (checked by output rules)")
    expect: Literal["allow", "block"] = Field(description="block if any enforce rule refuses it")
    rule: str | None = Field(default=None, description="the rule expected to fire, e.g. topic.medical")
    entities: list[str] | None = Field(default=None, description="PII entity types expected in the text")

    @model_validator(mode="after")
    def _one_text(self) -> PolicyTest:
        if (self.input is None) == (self.output is None):
            raise ValueError("give exactly one of 'input' or 'output'")
        return self


class Policy(_Strict):
    name: str = Field(pattern=RULE_NAME)
    description: str = ""
    pii: PiiPolicy = Field(default_factory=PiiPolicy)
    topics: TopicPolicy = Field(default_factory=TopicPolicy)
    contract: SchemaContract | None = None
    residency: Residency = Field(default_factory=Residency)
    audit: AuditPolicy = Field(default_factory=AuditPolicy)
    request: RequestPolicy = Field(default_factory=RequestPolicy)
    tests: list[PolicyTest] = Field(default_factory=list)
