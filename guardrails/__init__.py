"""Guardrails: one protocol (guardrails.base), one file per guardrail, one pipeline that runs them."""
