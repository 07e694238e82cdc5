"""Latency of the topic check, per request, on this machine.

    python bench/policy_latency.py [--n 200]

Times TopicGuardrail.scan_input (what a request pays: sentence split, one embedding per text
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

TEXT = (
    "I am trying to export the quarterly invoices from the billing module to a spreadsheet, but the export "
    "button stays grey even though I am an administrator. Yesterday it worked fine on my laptop. Could you "
    "tell me which permission is missing, and whether the export can be scheduled every Monday morning? "
    "We also need the file to include the tax column and the customer reference for our accountant. "
)


def prompt(chars: int) -> str:
    return (TEXT * (chars // len(TEXT) + 1))[:chars]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--model", default="auto", choices=["auto", "use-multilingual", "minilm"], help="topic encoder")
    ap.add_argument("--backend", default="auto", choices=["auto", "onnx", "numpy"], help="encoder runtime")
    args = ap.parse_args()
    import tempfile

    from _harness import machine, pct
    from guardrails.base import GuardContext
    from guardrails.topics.embedder import shared_embedder
    from guardrails.topics.guardrail import TopicGuardrail
    from policies.store import PolicyStore

    d = Path(tempfile.mkdtemp())
    (d / "support.yaml").write_text((ROOT / "policies" / "support.yaml").read_text())
    (d / "keywords.yaml").write_text(
        "name: keywords\ntopics:\n  deny:\n    - {name: w, keywords: [pipe bomb, silencer]}\n"
        "    - {name: g, regex: ['\\broulette\\b']}\n"
    )
    t0 = time.perf_counter()
    store = PolicyStore(d)
    guard = TopicGuardrail(store, lambda: shared_embedder(backend=args.backend, model=args.model).encode)
    print(f"# bench/policy_latency.py  {time.strftime('%Y-%m-%d')}  {machine()}  n={args.n}")
    print(f"policies loaded, model and example embeddings ready in {(time.perf_counter() - t0) * 1000:.0f} ms")

    async def run(policy: str, text: str) -> list[float]:
        out = []
        for i in range(args.n + 10):
            ctx = GuardContext("k", "a", policy, "r")
            body = {"messages": [{"role": "user", "content": text}]}
            t = time.perf_counter()
            await guard.scan_input(ctx, "chat", body)
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
            print(
                f"{policy:<9} {chars:>5} chars  {units:>2} units   p50 {pct(lat, 50):7.2f} ms   "
                f"p99 {pct(lat, 99):7.2f} ms   mean {statistics.mean(lat):7.2f} ms"
            )
    enc = shared_embedder(backend=args.backend, model=args.model)
    print(f"encoder: {type(enc).__name__}")
    t = [0.0] * 50
    for i in range(50):
        s = time.perf_counter()
        enc.encode(prompt(500))
        t[i] = (time.perf_counter() - s) * 1000
    print(f"one embedding of the whole 500 chars: p50 {pct(t, 50):.2f} ms")
    if hasattr(enc, "encode_many"):  # all sentences in one call vs one call per sentence, interleaved
        import re

        units = [u for u in re.split(r"(?<=[.!?;:])\s+", prompt(500)) if len(u.split()) >= 4]
        packed, each = interleaved(lambda: enc.encode_many(units), lambda: [enc.encode(u) for u in units])
        print(
            f"{len(units)} sentences of 500 chars: all in one call p50 {pct(packed, 50):.2f} ms, one call each "
            f"p50 {pct(each, 50):.2f} ms (ratio {pct(each, 50) / pct(packed, 50):.2f}x, same run)"
        )
        slow = shared_embedder(backend="numpy", model=args.model)
        if type(slow) is not type(enc):  # the numpy fallback of the same model
            a, b = interleaved(
                lambda: enc.encode_many(units),
                lambda: slow.encode_many(units) if hasattr(slow, "encode_many") else [slow.encode(u) for u in units],
            )
            print(
                f"{len(units)} sentences of 500 chars: {type(enc).__name__} p50 {pct(a, 50):.2f} ms, numpy fallback "
                f"{type(slow).__name__} p50 {pct(b, 50):.2f} ms (ratio {pct(b, 50) / pct(a, 50):.2f}x, same run)"
            )
    p50 = pct(results[("support", 500)], 50)
    print(f"topic check at 500 chars: p50 {p50:.2f} ms (target <= 5 ms): {'met' if p50 <= 5 else 'NOT met'}")
    pipeline_cost(args.n, d)
    return 0


def interleaved(first, second, n: int = 100) -> tuple[list[float], list[float]]:
    """Milliseconds of n calls of each, alternating, so machine noise hits both alike."""
    a, b = [], []
    for _ in range(n):
        for f, out in ((first, a), (second, b)):
            s = time.perf_counter()
            f()
            out.append((time.perf_counter() - s) * 1000)
    return a, b


def pipeline_cost(n: int, d: Path) -> None:
    """What topics add to a request whose PII guardrail also runs: they run concurrently."""
    from _harness import pct
    from guardrails.base import GuardContext
    from policies.store import PolicyStore
    from proxy.settings import parse_config
    from proxy.wiring import build_pipeline

    (d / "pii-only.yaml").write_text("name: pii-only\n")
    cfg = parse_config(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, api_base: 'http://127.0.0.1:1/v1'}\n"
        f"mixguard:\n  policies_dir: {d}\n  pii: {{long_text_processes: 0}}\n"
    )  # 500 chars: threads
    store = PolicyStore(d)
    pipe = build_pipeline(cfg, store)

    async def run(policy: str) -> list[float]:
        import redis.asyncio as aioredis

        from _harness import RedisProc

        rp = RedisProc().start()
        client = aioredis.from_url(rp.url)
        pipe.bind_redis(client)
        out = []
        try:
            for i in range(n // 2 + 5):
                text = prompt(500).replace("Monday", f"day {i} of {policy}")  # defeat the analysis cache
                ctx = GuardContext("k", "a", policy, "r")
                t = time.perf_counter()
                await pipe.check_input(ctx, "chat", {"messages": [{"role": "user", "content": text}]})
                if i >= 5:
                    out.append((time.perf_counter() - t) * 1000)
        finally:
            await client.aclose()
            rp.stop()
        return out

    both, alone = asyncio.run(run("support")), asyncio.run(run("pii-only"))
    print(
        f"whole input check at 500 chars (uncached): PII only p50 {pct(alone, 50):.2f} ms, PII + topics "
        f"p50 {pct(both, 50):.2f} ms: topics add {pct(both, 50) - pct(alone, 50):+.2f} ms "
        f"(ratio {pct(both, 50) / pct(alone, 50):.2f}; they run concurrently)"
    )


if __name__ == "__main__":
    sys.exit(main())
