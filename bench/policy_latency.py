"""Latency of the topic check, per request, on this machine.

    python bench/policy_latency.py [--n 200]

Times TopicGuardrail.check_input (what a request pays: sentence split, one embedding per text
unit computed once and shared by every rule, classifier, keyword and regex rules) with the
shipped policies/support.yaml (4 deny rules, 60 examples), for prompts of 100, 500 and 2,000
characters, and a keyword-only policy for comparison. Target (issue 4): <= 5 ms p50 at 500 chars.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TEXT = ("I am trying to export the quarterly invoices from the billing module to a spreadsheet, but the export "
        "button stays grey even though I am an administrator. Yesterday it worked fine on my laptop. Could you "
        "tell me which permission is missing, and whether the export can be scheduled every Monday morning? "
        "We also need the file to include the tax column and the customer reference for our accountant. ")


def prompt(chars: int) -> str:
    return (TEXT * (chars // len(TEXT) + 1))[:chars]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    from _harness import machine, pct
    from guardrails.base import GuardContext
    from guardrails.topics.embedder import shared_embedder
    from guardrails.topics.guardrail import TopicGuardrail
    from policies.store import PolicyStore

    import tempfile
    d = Path(tempfile.mkdtemp())
    (d / "support.yaml").write_text((ROOT / "policies" / "support.yaml").read_text())
    (d / "keywords.yaml").write_text("name: keywords\ntopics:\n  deny:\n    - {name: w, keywords: [pipe bomb, silencer]}\n"
                                     "    - {name: g, regex: ['\\broulette\\b']}\n")
    t0 = time.perf_counter()
    store = PolicyStore(d)
    guard = TopicGuardrail(store, lambda: shared_embedder().encode)
    print(f"# bench/policy_latency.py  {time.strftime('%Y-%m-%d')}  {machine()}  n={args.n}")
    print(f"policies loaded, model and example embeddings ready in {(time.perf_counter() - t0) * 1000:.0f} ms")

    async def run(policy: str, text: str) -> list[float]:
        out = []
        for i in range(args.n + 10):
            ctx = GuardContext("k", "a", policy, "r")
            body = {"messages": [{"role": "user", "content": text}]}
            t = time.perf_counter()
            await guard.check_input(ctx, "chat", body)
            if i >= 10:
                out.append((time.perf_counter() - t) * 1000)
        return out

    results = {}
    for policy in ("support", "keywords"):
        for chars in (100, 500, 2000):
            text = prompt(chars)
            m = guard.matcher(store.get(policy))
            units = len(m.vector(text)) if m.semantic else 0
            lat = asyncio.run(run(policy, text))
            results[(policy, chars)] = lat
            print(f"{policy:<9} {chars:>5} chars  {units:>2} units   p50 {pct(lat, 50):7.2f} ms   "
                  f"p99 {pct(lat, 99):7.2f} ms   mean {statistics.mean(lat):7.2f} ms")
    enc = shared_embedder()
    ids = len(enc.tokenizer.encode(prompt(500)).ids)
    t = [0.0] * 50
    for i in range(50):
        s = time.perf_counter()
        enc.encode(prompt(500))
        t[i] = (time.perf_counter() - s) * 1000
    print(f"one MiniLM embedding of 500 chars ({ids} tokens): p50 {pct(t, 50):.2f} ms")
    p50 = pct(results[("support", 500)], 50)
    print(f"topic check at 500 chars: p50 {p50:.2f} ms (target <= 5 ms): {'met' if p50 <= 5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
