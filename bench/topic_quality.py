"""Precision and recall of topic blocking on the labeled sets in tests/data/ (topics_*.jsonl).

The support policy's examples include every prompt of topics_labeled ... topics_heldout4, so
those sets show how the classifier fits its training data; topics_heldout5.jsonl, written after
the last policy change and never tuned on, shows how it generalizes (tests/data/README.md).

Uses policies/support.yaml's topic rules through the same matcher as the gateway. Prints
recall per topic and per kind (direct, paraphrase, other language, role-play), the false-block
rate on allowed prompts (product questions, tech, general, near misses), and a sweep showing what
a uniform threshold shift would trade. Targets (issue 4): recall >= 95% at false-block <= 2%.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", default=str(ROOT / "policies" / "support.yaml"))
    ap.add_argument(
        "--data",
        action="append",
        help="labeled JSONL (default: all topics_*.jsonl sets in the order they were written; the policy trains "
        "on all but topics_heldout5.jsonl, see tests/data/README.md)",
    )
    ap.add_argument("--show-errors", action="store_true")
    ap.add_argument("--model", default="auto", choices=["auto", "use-multilingual", "minilm"], help="topic encoder")
    ap.add_argument("--backend", default="auto", choices=["auto", "onnx", "numpy"], help="encoder runtime")
    args = ap.parse_args()

    from guardrails.topics.embedder import shared_embedder
    from guardrails.topics.matcher import TopicMatcher
    from policies.loader import load_policy_file

    lp = load_policy_file(Path(args.policy))
    encoder = shared_embedder(backend=args.backend, model=args.model)
    enc = encoder.encode
    print(f"encoder: {type(encoder).__name__}")
    t0 = time.perf_counter()
    matcher = TopicMatcher(lp.policy.topics, enc)
    prep = time.perf_counter() - t0
    datasets = args.data or [
        str(ROOT / "tests" / "data" / f"topics_{n}.jsonl")
        for n in ("labeled", "heldout", "heldout2", "heldout3", "heldout4", "heldout5")
    ]
    for path in datasets:
        print(f"\n===== {Path(path).name}")
        report(
            lp,
            enc,
            matcher,
            prep,
            [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()],
            args.show_errors,
        )
    return 0


def report(lp, enc, matcher, prep: float, rows: list[dict], show_errors: bool) -> None:
    from guardrails.topics.matcher import TopicMatcher

    vecs = [matcher.vector(r["text"]) if matcher.semantic else None for r in rows]
    scored = [(r, matcher.evaluate(r["text"], v)) for r, v in zip(rows, vecs)]

    def decide(scores) -> tuple[bool, str | None]:
        fired = [s for s in scores if s.kind == "deny" and s.fired and s.mode == "enforce"]
        best = max(fired, key=lambda s: s.score) if fired else None
        return best is not None, best.rule_id.split(".", 1)[1] if best else None

    def shifted(shift: float) -> list[tuple[dict, list]]:
        t = lp.policy.topics.model_copy(deep=True)
        for rule in t.deny:
            rule.threshold = min(1.0, max(0.0, rule.threshold + shift))
        m = TopicMatcher(t, enc)
        return [(r, m.evaluate(r["text"], v)) for r, v in zip(rows, vecs)]

    blocked_rows = [(r, s) for r, s in scored if r["expect"] == "block"]
    allowed_rows = [(r, s) for r, s in scored if r["expect"] == "allow"]
    print(
        f"policy {lp.policy.name}@{lp.version}; {len(blocked_rows)} prompts to block, {len(allowed_rows)} to allow; "
        f"example embeddings prepared in {prep * 1000:.0f} ms"
    )
    by_kind, by_topic = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
    errors = []
    for r, s in blocked_rows:
        hit, _ = decide(s)
        for d in (by_kind[r["kind"]], by_topic[r["topic"]]):
            d[0] += hit
            d[1] += 1
        if not hit:
            errors.append(("missed", r, s))
    fb_kind = defaultdict(lambda: [0, 0])
    for r, s in allowed_rows:
        hit, which = decide(s)
        fb_kind[r["kind"]][0] += hit
        fb_kind[r["kind"]][1] += 1
        if hit:
            errors.append((f"false block ({which})", r, s))
    tp = sum(v[0] for v in by_topic.values())
    fp = sum(v[0] for v in fb_kind.values())
    recall = tp / len(blocked_rows)
    false_block = fp / len(allowed_rows)
    precision = tp / (tp + fp) if tp + fp else 1.0
    print(f"\n{'recall by topic':<24}" + "".join(f"{k:>12}" for k in sorted(by_topic)))
    print(f"{'':<24}" + "".join(f"{v[0] / v[1]:>11.1%} " for _, v in sorted(by_topic.items())))
    print(f"{'recall by kind':<24}" + "".join(f"{k:>12}" for k in sorted(by_kind)))
    print(f"{'':<24}" + "".join(f"{v[0] / v[1]:>11.1%} " for _, v in sorted(by_kind.items())))
    print(f"{'false blocks by kind':<24}" + "".join(f"{k:>12}" for k in sorted(fb_kind)))
    print(f"{'':<24}" + "".join(f"{v[0] / v[1]:>11.1%} " for _, v in sorted(fb_kind.items())))
    print(
        f"\nOVERALL recall {recall:.1%}  false-block rate {false_block:.1%}  precision {precision:.1%}"
        f"   (targets: recall >= 95% at false-block <= 2%)"
    )
    print("\nthreshold shift sweep (all deny rules):")
    for shift in (-0.1, -0.05, 0.0, 0.05, 0.1):
        res = shifted(shift)
        rec = sum(decide(s)[0] for r, s in res if r["expect"] == "block") / len(blocked_rows)
        fbr = sum(decide(s)[0] for r, s in res if r["expect"] == "allow") / len(allowed_rows)
        print(f"  {shift:+.2f}: recall {rec:.1%}  false-block {fbr:.1%}")
    if show_errors:
        print("\nerrors:")
        for what, r, s in errors:
            top = max((x for x in s if x.kind == "deny"), key=lambda x: x.score)
            print(f"  {what:<22} [{r['kind']}] {top.rule_id} {top.score:.2f}/{top.threshold:.2f}  {r['text'][:90]}")


if __name__ == "__main__":
    sys.exit(main())
