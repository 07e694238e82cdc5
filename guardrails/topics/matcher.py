"""Scores one text against one policy's topic rules. Pure and synchronous: the gateway, the
`mixguard policy test|explain` commands and the quality benchmark all use this same code.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from policies.models import TopicPolicy, TopicRule

Encoder = Callable[[str], np.ndarray]


@dataclass(frozen=True)
class RuleScore:
    rule_id: str          # topic.<name>, or topic.off_topic for an allow list nobody matched
    kind: str             # deny | allow
    score: float
    via: str              # keyword | regex | semantic | none
    threshold: float
    fired: bool
    mode: str
    evidence: str = ""    # which example or pattern matched (policy text, never the prompt)

    def as_detail(self) -> dict[str, Any]:
        return {"via": self.via, "threshold": self.threshold, "kind": self.kind}


class _CompiledRule:
    def __init__(self, rule: TopicRule, default_mode: str, encode: Encoder | None) -> None:
        self.rule = rule
        self.mode = rule.mode or default_mode
        words = [re.escape(k.strip()) for k in rule.keywords if k.strip()]
        self.keywords = re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", re.IGNORECASE) if words else None
        self.patterns = [re.compile(r, re.IGNORECASE) for r in rule.regex]
        texts = [*rule.examples, *([rule.description] if rule.description and rule.examples else [])]
        self.example_texts = texts
        self.examples = np.stack([encode(t) for t in texts]) if (texts and encode is not None) else None

    def score(self, text: str, vec: np.ndarray | None) -> tuple[float, str, str]:
        if self.keywords is not None and (m := self.keywords.search(text)):
            return 1.0, "keyword", m.group(0).lower()  # equals a policy keyword, up to case
        for p in self.patterns:
            if p.search(text):
                return 1.0, "regex", p.pattern
        if self.examples is not None and vec is not None:
            sims = self.examples @ vec
            i = int(np.argmax(sims))
            return float(sims[i]), "semantic", self.example_texts[i][:80]
        return 0.0, "none", ""


class TopicMatcher:
    """One policy version's rules, with example embeddings computed once."""

    def __init__(self, policy: TopicPolicy, encode: Encoder | None) -> None:
        self.policy = policy
        self.semantic = any(r.examples for r in [*policy.deny, *policy.allow])
        if self.semantic and encode is None:
            raise ValueError("semantic topic rules need an encoder")
        self.deny = [_CompiledRule(r, policy.mode, encode) for r in policy.deny]
        self.allow = [_CompiledRule(r, policy.mode, encode) for r in policy.allow]

    def evaluate(self, text: str, vec: np.ndarray | None, output: bool = False) -> list[RuleScore]:
        """Every rule's score; `fired` means the rule decides against the text."""
        out: list[RuleScore] = []
        for c in self.deny:
            s, via, ev = c.score(text, vec)
            out.append(RuleScore(f"topic.{c.rule.name}", "deny", round(s, 4), via, c.rule.threshold,
                                 s >= c.rule.threshold, c.mode, ev))
        if self.allow and not output:
            allow_scores = []
            for c in self.allow:
                s, via, ev = c.score(text, vec)
                allow_scores.append(RuleScore(f"topic.{c.rule.name}", "allow", round(s, 4), via, c.rule.threshold,
                                              False, c.mode, ev))
            out += allow_scores
            on_topic = any(a.score >= a.threshold for a in allow_scores)
            best = max(allow_scores, key=lambda a: a.score)
            modes = {c.mode for c in self.allow}
            out.append(RuleScore("topic.off_topic", "allow", best.score, best.via, best.threshold,
                                 not on_topic, "enforce" if "enforce" in modes else "monitor"))
        return out

    @staticmethod
    def verdict(scores: list[RuleScore]) -> RuleScore | None:
        """The enforce rule that blocks, if any (highest score first)."""
        fired = [s for s in scores if s.fired and s.mode == "enforce"]
        return max(fired, key=lambda s: s.score) if fired else None


def latest_user_text(kind: str, body: dict[str, Any]) -> str:
    """What topic rules judge: the newest user message (or the completion prompt)."""
    if kind == "completions":
        p = body.get("prompt")
        return p if isinstance(p, str) else "\n".join(x for x in (p or []) if isinstance(x, str))
    for m in reversed(body.get("messages") or []):
        if m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c
        if isinstance(c, list):
            return "\n".join(p["text"] for p in c if isinstance(p, dict) and isinstance(p.get("text"), str))
        return ""
    return ""
