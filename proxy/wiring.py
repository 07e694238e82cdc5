"""Builds the app from a config: which guardrails run, in which order, with what they need.

Order: topics first (a refused prompt costs no PII analysis and reaches nothing), then PII.
Output filters run in reverse order (see guardrails.pipeline).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from guardrails.pipeline import Pipeline
from policies.store import PolicyStore

from .app import create_app
from .metrics import observe_pii_analyzer
from .settings import GatewayConfig


def build_pipeline(config: GatewayConfig, store: PolicyStore) -> Pipeline:
    ms = config.mixguard
    steps: list = []

    from guardrails.residency import ResidencyGuardrail
    from guardrails.topics.guardrail import TopicGuardrail

    def encoder():
        from guardrails.topics.embedder import shared_embedder

        return shared_embedder(ms.embedding_model_dir, ms.embedding_backend, ms.embedding_model).encode

    steps.append(TopicGuardrail(store, encoder))
    steps.append(ResidencyGuardrail(store))
    if ms.pii.enabled:
        from guardrails.pii.analyzer import PiiAnalyzer, engine_from_spec
        from guardrails.pii.engine import DEFAULT_RECOGNIZERS, NER_CHOICES, ner_recognizers
        from guardrails.pii.vault import Vault, vault_key_from_env
        from guardrails.pii_guardrail import PiiGuardrail

        def spec_for(policies: Any) -> tuple:
            """What the Presidio engine is built from (picklable: worker processes rebuild it)."""
            enabled = (
                (DEFAULT_RECOGNIZERS - NER_CHOICES)
                | ner_recognizers(ms.pii.ner)
                | {n for lp in policies.values() for n in lp.policy.pii.enable_presidio_recognizers}
            )
            return (
                ms.pii.spacy_model,
                sorted(enabled),
                [r.model_dump() for lp in policies.values() for r in lp.policy.pii.recognizers],
                tuple(ms.pii.languages),
                ms.pii.ner_model,
            )

        spec = spec_for(store.policies)
        key = vault_key_from_env(ms.pii.vault_key_env)
        analyzer = PiiAnalyzer(
            engine_from_spec(spec),
            None,
            ms.redis_prefix,
            key,
            workers=ms.pii.analysis_workers,
            spec=spec,
            processes=ms.pii.long_text_processes,
            long_text_chars=ms.pii.long_text_chars,
            per_key_workers=ms.pii.analysis_workers_per_key,
            short_texts_in_processes=ms.pii.short_texts_in_processes,
            jobs_per_process=ms.pii.jobs_per_process,
        )
        observe_pii_analyzer(analyzer)  # its cache hits and analyses appear on /metrics

        def on_reload(policies: Any) -> None:  # a policy that adds a custom recognizer takes effect live
            new = spec_for(policies)
            if new != analyzer.spec:
                analyzer.replace_engine(engine_from_spec(new), new)

        store.listeners.append(on_reload)
        vault = Vault(None, ms.redis_prefix, key, ms.pii.vault_ttl_seconds)
        hosted = {d.backend_id for d in config.model_list if d.hosted}
        steps.append(PiiGuardrail(analyzer, vault, store, is_hosted=lambda b: b in hosted))
    return Pipeline(steps)


def build_app(config: GatewayConfig) -> FastAPI:
    store = PolicyStore(config.mixguard.policies_path(), required=config.mixguard.required_policies())
    app = create_app(config, build_pipeline(config, store), store)
    gw = app.state.gateway
    sink = config.mixguard.audit.sink
    if sink is not None and gw.audit is not None:  # records forwarded as written (proxy/audit/sink.py)
        from .audit.sink import build_sink

        gw.audit.sink = build_sink(sink)
    return app
