"""Builds the app from a config: which guardrails run, in which order, with what they need."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from guardrails.pipeline import Pipeline
from policies.loader import load_policies

from .app import create_app
from .settings import GatewayConfig


def build_pipeline(config: GatewayConfig) -> Pipeline:
    ms = config.mixguard
    steps = []
    if ms.pii.enabled:
        from guardrails.pii.engine import build_analyzer
        from guardrails.pii.analyzer import PiiAnalyzer, custom_recognizer
        from guardrails.pii.vault import Vault, vault_key_from_env
        from guardrails.pii_guardrail import PiiGuardrail

        policies = load_policies(Path(ms.policies_dir))
        customs = [custom_recognizer(r) for lp in policies.values() for r in lp.policy.pii.recognizers]
        extra = {n for lp in policies.values() for n in lp.policy.pii.enable_presidio_recognizers}
        from guardrails.pii.engine import DEFAULT_RECOGNIZERS
        engine = build_analyzer(ms.pii.spacy_model, DEFAULT_RECOGNIZERS | extra, customs)
        key = vault_key_from_env(ms.pii.vault_key_env)
        analyzer = PiiAnalyzer(engine, None, ms.redis_prefix, key, workers=ms.pii.analysis_workers)
        vault = Vault(None, ms.redis_prefix, key, ms.pii.vault_ttl_seconds)
        hosted = {d.backend_id for d in config.model_list if not d.litellm_params.openai_compatible}
        steps.append(PiiGuardrail(analyzer, vault, policies, is_hosted=lambda b: b in hosted))
    return Pipeline(steps)


def build_app(config: GatewayConfig) -> FastAPI:
    return create_app(config, build_pipeline(config))
