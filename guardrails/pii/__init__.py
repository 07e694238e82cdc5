"""PII guardrail: Presidio analysis, deterministic placeholders, Redis vault, restore (streaming too)."""
