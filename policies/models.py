"""Policy files as typed models. `mixguard policy schema` writes policies/schema.json from these."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PiiAction = Literal["mask", "redact", "hash", "block", "allow"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntityRule(_Strict):
    action: PiiAction = "mask"
    threshold: float | None = Field(default=None, ge=0, le=1, description="minimum score; default: pii.score_threshold")


class PatternSpec(_Strict):
    name: str
    regex: str
    score: float = Field(default=0.8, ge=0, le=1)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        return v


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
    allow_list: list[str] = Field(default_factory=list, description="values never treated as PII (exact, case-insensitive)")
    recognizers: list[CustomRecognizer] = Field(default_factory=list)
    enable_presidio_recognizers: list[str] = Field(default_factory=list,
                                                   description="extra Presidio recognizers by class name")
    restore: bool = True
    restore_on_fallback: bool = True
    output_action: Literal["redact", "mask", "allow"] = "redact"
    analyze_timeout_s: float = Field(default=10.0, gt=0)

    def rule(self, entity: str) -> EntityRule:
        r = self.entities.get(entity)
        if r is None:
            custom = next((c for c in self.recognizers if c.entity == entity), None)
            action = custom.action if custom is not None else self.default_action
            return EntityRule(action=action, threshold=self.score_threshold)
        if isinstance(r, str):
            return EntityRule(action=r, threshold=self.score_threshold)
        return EntityRule(action=r.action, threshold=self.score_threshold if r.threshold is None else r.threshold)


class Policy(_Strict):
    name: str
    description: str = ""
    pii: PiiPolicy = Field(default_factory=PiiPolicy)
