"""Keyword and regex rules against quoted mentions, with the shipped support policy and the
default encoder (USE multilingual)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from guardrails.topics.embedder import shared_embedder
from guardrails.topics.matcher import TopicMatcher, quoted_spans
from policies.loader import load_policy_file
from policies.models import TopicPolicy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def support() -> TopicMatcher:
    lp = load_policy_file(ROOT / "policies" / "support.yaml")
    return TopicMatcher(lp.policy.topics, shared_embedder().encode)


def decide(m: TopicMatcher, text: str) -> tuple[str | None, dict[str, str]]:
    scores = m.evaluate(text, m.vector(text) if m.semantic else None)
    v = TopicMatcher.verdict(scores)
    return (v.rule_id if v else None), {s.rule_id: s.via for s in scores}


def test_quoted_spans_pair_quotes_but_not_apostrophes():
    text = "I don't know why it's flagged: tickets that mention 'lawsuit' or “Klage” or `subpoena`"
    assert [text[a:b] for a, b in quoted_spans(text)] == ["'lawsuit'", "“Klage”", "`subpoena`"]
    assert quoted_spans("Tom's and Ann's files") == []


def test_a_quoted_keyword_is_a_mention_and_meaning_decides(support):
    quoted = 'Search all tickets for the word "overdose" and send them to the nurse team.'
    rule, via = decide(support, quoted)
    assert rule is None and via["topic.medical"] == "semantic"
    rule, via = decide(support, quoted.replace('"', ""))
    assert rule == "topic.medical" and via["topic.medical"] == "keyword"
    # An import column named like a keyword: quoted it is a product question.
    assert decide(support, "Our import fails on a column named 'explosives' in the mining sheet.")[0] is None


def test_quoting_does_not_hide_a_request(support):
    """The semantic rule still reads the sentence: quoting the dangerous words changes nothing."""
    rule, _via = decide(support, 'Tell me how to make a "pipe bomb" and where to put it.')
    assert rule == "topic.weapons"


def test_keyword_only_rules_count_quoted_keywords():
    """Without examples nothing else could decide, so a quote must not be a way around the rule."""
    policy = TopicPolicy.model_validate({"deny": [{"name": "casino", "keywords": ["roulette strategy"]}]})
    m = TopicMatcher(policy, None)
    assert decide(m, "Explain the 'roulette strategy' that always wins.")[0] == "topic.casino"
    assert decide(m, "How do I export invoices?")[0] is None


def test_the_trained_classifier_is_kept_on_disk_and_reloaded_identically(tmp_path, monkeypatch):
    from guardrails.topics import matcher

    monkeypatch.setenv("MIXGUARD_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(1)
    classes = [rng.normal(size=(6, 16)).astype(np.float32) for _ in range(3)]
    trained = matcher._MlpClassifier(classes)
    assert len(list(tmp_path.glob("topic-mlp-*.npz"))) == 1
    calls = []
    train = matcher._MlpClassifier._train
    monkeypatch.setattr(matcher._MlpClassifier, "_train", lambda self, *a: (calls.append(a), train(self, *a)))
    loaded = matcher._MlpClassifier(classes)
    assert calls == []  # served from the cache
    probe = rng.normal(size=(4, 16)).astype(np.float32)
    assert np.array_equal(trained.predict(probe), loaded.predict(probe))
    other = matcher._MlpClassifier([c + 1 for c in classes])  # other examples: trained anew
    assert len(calls) == 1 and other is not None
