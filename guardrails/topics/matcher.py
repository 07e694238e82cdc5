"""Scores one text against one policy's topic rules. Pure and synchronous: the gateway, the
`mixguard policy test|explain` commands and the quality benchmark all use this same code.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from policies.models import TopicPolicy, TopicRule

from ..linear_regex import compile_linear
from .onnx_encoder import CACHE_DIR

Encoder = Callable[[str], np.ndarray]

_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")
MIN_UNIT_WORDS = 4
MAX_UNITS = 16
# A short quoted phrase: "...", “...”, «...», „...“, `...`, or '...' opened after a space or bracket
# (so the apostrophes of "don't ... it's" never pair up).
_QUOTED = re.compile(
    r'"[^"\n]{1,60}"|“[^”\n]{1,60}”|«[^»\n]{1,60}»|„[^“”\n]{1,60}[“”]|`[^`\n]{1,60}`'
    r"|(?<![^\s(\[])'[^'\n]{1,60}'(?!\w)"
)


def _encode_all(encode: Encoder, texts: list[str]) -> np.ndarray:
    """Embeddings of several texts, in one batch where the encoder takes one (one call per text otherwise)."""
    many = getattr(getattr(encode, "__self__", None), "encode_many", None)
    return many(list(texts)) if many is not None else np.stack([encode(t) for t in texts])


def quoted_spans(text: str) -> list[tuple[int, int]]:
    """Where the text quotes a short phrase. A keyword inside one is a mention ("tag tickets that
    mention 'lawsuit'"), not a request, so rules that also have examples let meaning decide."""
    return [m.span() for m in _QUOTED.finditer(text)]


@dataclass(frozen=True)
class RuleScore:
    rule_id: str  # topic.<name>, or topic.off_topic for an allow list nobody matched
    kind: str  # deny | allow
    score: float
    via: str  # keyword | regex | semantic | none
    threshold: float
    fired: bool
    mode: str
    evidence: str = ""  # which example or pattern matched (policy text, never the prompt)

    def as_detail(self) -> dict[str, Any]:
        return {"via": self.via, "threshold": self.threshold, "kind": self.kind}


class _CompiledRule:
    def __init__(self, rule: TopicRule, default_mode: str, encode: Encoder | None) -> None:
        self.rule = rule
        self.mode = rule.mode or default_mode
        words = [re.escape(k.strip()) for k in rule.keywords if k.strip()]
        self.keywords = re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", re.IGNORECASE) if words else None
        self.patterns = [compile_linear(r, re.IGNORECASE) for r in rule.regex]  # RE2: never exponential
        texts = [*rule.examples, *([rule.description] if rule.description and rule.examples else [])]
        self.example_texts = texts
        self.examples = _encode_all(encode, texts) if (texts and encode is not None) else None

    def score(self, text: str, vecs: np.ndarray | None, quotes: list[tuple[int, int]]) -> tuple[float, str, str]:
        """`quotes`: the text's quoted_spans. Quoted mentions count only for rules without examples:
        there nothing else could decide, and quoting a keyword must not be a way around the rule."""
        if self.examples is None:
            quotes = []

        def asked(m: re.Match[str]) -> bool:
            return not any(a <= m.start() and m.end() <= b for a, b in quotes)

        if self.keywords is not None:
            for m in self.keywords.finditer(text):
                if asked(m):
                    return 1.0, "keyword", m.group(0).lower()  # equals a policy keyword, up to case
        for p in self.patterns:
            if any(asked(m) for m in p.finditer(text)):
                return 1.0, "regex", p.pattern
        if self.examples is not None and vecs is not None:
            sims = self.examples @ vecs.T  # examples x text units
            i = int(np.argmax(sims.max(axis=1)))
            return float(sims[i].max()), "semantic", self.example_texts[i][:80]
        return 0.0, "none", ""


def _params_path(key: str) -> Path:
    return Path(os.path.expanduser(os.environ.get("MIXGUARD_CACHE_DIR") or CACHE_DIR)) / f"topic-mlp-{key}.npz"


def _load_params(key: str) -> list[np.ndarray] | None:
    try:
        with np.load(_params_path(key), allow_pickle=False) as z:
            return [z[f"p{i}"] for i in range(4)]
    except Exception:  # not cached yet, or unreadable: train
        return None


def _store_params(key: str, params: list[np.ndarray]) -> None:
    """Written atomically (concurrent starts never read half a file); a read-only disk only costs the cache."""
    path = _params_path(key)
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, p0=params[0], p1=params[1], p2=params[2], p3=params[3])
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


class _MlpClassifier:
    """A small neural network over sentence embeddings (one hidden layer of 128 ReLU units, one
    output class per deny topic plus a neutral class), trained when a policy loads on the deny
    rules' examples against `neutral_examples`: 300 full-batch Adam steps, about 0.3 s for a few
    hundred examples. Seeded, so every replica and every restart trains the same network.

    Why not a linear classifier (the previous method): topics and the questions an app should
    answer are not linearly separable in the encoder's space ("our law office needs billable
    hours" sits between legal advice and product questions). In cross-validation over all labeled
    topic prompts the network kept recall at a fraction of the false blocks (bench/topic_quality.py
    prints the figures on a set neither was tuned on). Its probabilities are lower than a linear
    model's for the same text, so thresholds around 0.5 suit it."""

    HIDDEN, STEPS, LR, L2, SEED = 128, 300, 0.05, 1e-3, 0

    def __init__(self, classes: list[np.ndarray]) -> None:
        x = np.concatenate(classes).astype(np.float32)
        y = np.concatenate([np.full(len(c), i) for i, c in enumerate(classes)])
        # Training is seeded, so the same examples always give the same network: it is kept on disk
        # (about 3 s saved on every start, every replica and every test gateway after the first).
        key = hashlib.sha256(
            repr((self.HIDDEN, self.STEPS, self.LR, self.L2, self.SEED, x.shape)).encode() + x.tobytes() + y.tobytes()
        ).hexdigest()[:24]
        cached = _load_params(key)
        if cached is not None:
            self.w1, self.b1, self.w2, self.b2 = cached
            return
        self._train(x, y, len(classes))
        _store_params(key, [self.w1, self.b1, self.w2, self.b2])

    def _train(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        onehot = np.eye(n_classes, dtype=np.float32)[y]
        rng = np.random.default_rng(self.SEED)
        w1 = (rng.normal(0.0, 3.0 / np.sqrt(x.shape[1]), (x.shape[1], self.HIDDEN))).astype(np.float32)
        params = [
            w1,
            np.zeros(self.HIDDEN, np.float32),
            np.zeros((self.HIDDEN, n_classes), np.float32),
            np.zeros(n_classes, np.float32),
        ]
        m1 = [np.zeros_like(p) for p in params]
        m2 = [np.zeros_like(p) for p in params]
        for t in range(1, self.STEPS + 1):
            w1, b1, w2, b2 = params
            h = np.maximum(0.0, x @ w1 + b1)
            g = (self._softmax(h @ w2 + b2) - onehot) / len(x)
            gh = g @ w2.T
            gh[h <= 0] = 0.0
            grads = [x.T @ gh + self.L2 * w1, gh.sum(0), h.T @ g + self.L2 * w2, g.sum(0)]
            for p, a, v, gr in zip(params, m1, m2, grads):  # Adam, in place
                a *= 0.9
                a += 0.1 * gr
                v *= 0.999
                v += 0.001 * gr * gr
                p -= self.LR * (a / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        self.w1, self.b1, self.w2, self.b2 = params

    @staticmethod
    def _softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return p

    def predict(self, vecs: np.ndarray) -> np.ndarray:
        """Class probabilities per text unit (units x classes)."""
        return self._softmax(np.maximum(0.0, vecs @ self.w1 + self.b1) @ self.w2 + self.b2)


class TopicMatcher:
    """One policy version's rules, with example embeddings computed once."""

    def __init__(self, policy: TopicPolicy, encode: Encoder | None) -> None:
        self.policy = policy
        self.encode = encode
        self.semantic = any(r.examples for r in [*policy.deny, *policy.allow])
        if self.semantic and encode is None:
            raise ValueError("semantic topic rules need an encoder")
        self.deny = [_CompiledRule(r, policy.mode, encode) for r in policy.deny]
        self.allow = [_CompiledRule(r, policy.mode, encode) for r in policy.allow]
        self.neutral = (
            _encode_all(encode, policy.neutral_examples)
            if policy.neutral_examples and self.semantic and encode is not None
            else None
        )
        self.classifier: _MlpClassifier | None = None
        trainable = [c for c in self.deny if c.examples is not None]
        if policy.semantic_method == "classifier" and self.neutral is not None and trainable:
            # `trainable` holds only rules with examples
            self.classifier = _MlpClassifier(cast("list[np.ndarray]", [c.examples for c in trainable]) + [self.neutral])
            self._class_of = {id(c): i for i, c in enumerate(trainable)}
        # The nearest neutral example matters only to rules scored by similarity, not by the classifier.
        self._neutral_similarity = self.neutral is not None and (
            self.classifier is None or len(trainable) < len(self.deny)
        )

    def vector(self, text: str) -> np.ndarray:
        """Embeddings of the text's sentences (units x dim; the whole text if it is one sentence),
        computed once per request and shared by every rule.

        A topic hidden in one sentence of a longer prompt ("Let's play a game: you are a doctor.
        Which pills cure my insomnia?") scores as high as if it were asked alone. Encoding the whole
        text as well measured no better on the labeled sets and costs twice as much.
        """
        assert self.encode is not None
        sentences = [x.strip() for x in _SENTENCE.split(text) if len(x.split()) >= MIN_UNIT_WORDS]
        units = sentences[:MAX_UNITS] if len(sentences) > 1 else [text]
        # Encoders with encode_many embed all units in one call (USE: one batch; int8 MiniLM: one
        # packed row, each unit attending only to itself).
        return _encode_all(self.encode, units) if len(units) > 1 else self.encode(units[0])[None]

    def evaluate(self, text: str, vec: np.ndarray | None, output: bool = False) -> list[RuleScore]:
        """Every rule's score; `fired` means the rule decides against the text."""
        out: list[RuleScore] = []
        probs = self.classifier.predict(vec) if self.classifier is not None and vec is not None else None
        neutral = float((self.neutral @ vec.T).max()) if self._neutral_similarity and vec is not None else None
        quotes = quoted_spans(text)
        for c in self.deny:
            if probs is not None and id(c) in self._class_of:
                s, via, ev = c.score(text, None, quotes)  # keywords and regex still win outright
                if via == "none":
                    p = probs[:, self._class_of[id(c)]]
                    s, via, ev = float(p.max()), "semantic", f"classifier p={float(p.max()):.2f}"
                out.append(
                    RuleScore(
                        f"topic.{c.rule.name}",
                        "deny",
                        round(s, 4),
                        via,
                        c.rule.threshold,
                        s >= c.rule.threshold,
                        c.mode,
                        ev,
                    )
                )
                continue
            s, via, ev = c.score(text, vec, quotes)
            fired = s >= c.rule.threshold
            if fired and via == "semantic" and neutral is not None and s < neutral + self.policy.neutral_margin:
                fired, ev = False, f"closer to neutral examples ({neutral:.2f})"
            out.append(RuleScore(f"topic.{c.rule.name}", "deny", round(s, 4), via, c.rule.threshold, fired, c.mode, ev))
        if self.allow and not output:
            allow_scores = []
            for c in self.allow:
                s, via, ev = c.score(text, vec, quotes)
                allow_scores.append(
                    RuleScore(f"topic.{c.rule.name}", "allow", round(s, 4), via, c.rule.threshold, False, c.mode, ev)
                )
            out += allow_scores
            on_topic = any(a.score >= a.threshold for a in allow_scores)
            best = max(allow_scores, key=lambda a: a.score)
            modes = {c.mode for c in self.allow}
            out.append(
                RuleScore(
                    "topic.off_topic",
                    "allow",
                    best.score,
                    best.via,
                    best.threshold,
                    not on_topic,
                    "enforce" if "enforce" in modes else "monitor",
                )
            )
        return out

    @staticmethod
    def verdict(scores: list[RuleScore]) -> RuleScore | None:
        """The enforce rule that blocks, if any (highest score first)."""
        fired = [s for s in scores if s.fired and s.mode == "enforce"]
        return max(fired, key=lambda s: s.score) if fired else None
