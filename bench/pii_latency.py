"""PII guardrail latency: p50/p99 for 200, 2,000 and 16,000-character prompts, per-turn cost over
a 20-turn conversation, and event-loop lag while a long prompt is analysed.

    python bench/pii_latency.py [--runs 30]

Runs the real guardrail (Presidio + bundled spaCy model, Redis vault and analysis cache) in
process, against a Redis server it starts. Every prompt is fresh text (no cache hits) except the
unchanged history of the conversation, which is the point of the per-turn figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time

os.environ.setdefault("MIXGUARD_VAULT_KEY", "bench-key")

from _harness import ROOT, RedisProc, machine, pct
from guardrails.pii.token_ner import CLASSIFIERS

SENTENCES = [
    "Please update the shipping address for customer {name} to {street}.",
    "The invoice was sent to {email} yesterday and nobody replied.",
    "Call {name} back at {phone} about the renewal of contract {n}.",
    "Our quarterly report shows revenue growth of {n} percent in the northern region.",
    "The deployment of version 2.{n}.1 is scheduled after the database migration finishes.",
    "Summarise the meeting notes and list the open action items for the platform team.",
    "Refund the duplicate charge on card {card} and confirm by e-mail.",
    "The stack trace points to a null reference in the billing worker, line {n}.",
]
NAMES = ["Maria Gonzalez", "Peter Novak", "Aisha Khan", "John Miller", "Chen Wei", "Laura Rossi"]


def text_of(n_chars: int, rng: random.Random) -> str:
    out = []
    while sum(map(len, out)) < n_chars:
        out.append(
            rng.choice(SENTENCES).format(
                name=rng.choice(NAMES),
                street=f"{rng.randint(1, 999)} Baker Street",
                email=f"user{rng.randint(1, 10**6)}@example.com",
                phone=f"(212) 555-{rng.randint(1000, 9999)}",
                n=rng.randint(1, 10**6),
                card="4111 1111 1111 1111",
            )
        )
    return " ".join(out)[:n_chars]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--spacy-model", help="an installed spaCy package or a model directory (default: the config's)")
    ap.add_argument("--ner-model", choices=list(CLASSIFIERS), help="mixguard.pii.ner_model (default: the config's)")
    args = ap.parse_args()
    import redis.asyncio as aioredis

    from guardrails.base import GuardContext
    from guardrails.pii_guardrail import PiiGuardrail
    from policies.store import PolicyStore
    from proxy.settings import parse_config
    from proxy.wiring import build_pipeline

    redis = RedisProc().start()
    try:
        t0 = time.perf_counter()
        cfg = parse_config(
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, api_base: 'http://127.0.0.1:1/v1'}\n"
            f"mixguard:\n  policies_dir: {ROOT / 'policies'}\n"
            + "  pii: {"
            + ", ".join(
                f"{k}: '{v}'" for k, v in (("spacy_model", args.spacy_model), ("ner_model", args.ner_model)) if v
            )
            + "}\n"
        )
        pipe = build_pipeline(cfg, PolicyStore(cfg.mixguard.policies_path()))
        build_s = time.perf_counter() - t0
        client = aioredis.from_url(redis.url)
        pipe.bind_redis(client)
        rng = random.Random(7)
        print(
            f"# bench/pii_latency.py  {time.strftime('%Y-%m-%d')}  {machine()}  runs={args.runs}  (engine build {build_s:.1f} s)"
            + (f"  ner_model={args.ner_model}" if args.ner_model else "")
        )

        async def once(messages: list[dict]) -> float:
            ctx = GuardContext("bench", "bench", "default", "r", conversation_id=None)
            body = {"messages": [dict(m) for m in messages]}
            t = time.perf_counter()
            await pipe.check_input(ctx, "chat", body)
            return (time.perf_counter() - t) * 1000

        pii = next(g for g in pipe.guardrails if isinstance(g, PiiGuardrail))
        pii.analyzer.wait_warm()  # long texts go to worker processes: let them load spaCy first
        await once([{"role": "user", "content": text_of(500, rng)}])  # warm-up
        for _ in range(3):
            await once([{"role": "user", "content": text_of(16000, rng)}])
        for n in (200, 2000, 16000):
            runs = args.runs if n < 16000 else max(5, args.runs // 3)
            lat = [await once([{"role": "user", "content": text_of(n, rng)}]) for _ in range(runs)]
            print(
                f"prompt {n:>6} chars   p50 {pct(lat, 50):7.1f} ms   p99 {pct(lat, 99):7.1f} ms   ({runs} runs)"
                + (f"  runs: {', '.join(f'{x:.0f}' for x in lat)}" if n == 16000 else "")
            )

        for prewarm in (False, True):
            turns: list[list[float]] = []
            for _rep in range(3):
                conv: list[dict] = [{"role": "system", "content": "You are the support assistant of Acme."}]
                per = []
                for _ in range(20):
                    conv.append({"role": "user", "content": text_of(300, rng)})
                    per.append(await once(conv))
                    answer = text_of(300, rng)
                    conv.append({"role": "assistant", "content": answer})
                    if prewarm:  # what the gateway does after responding, off the request's path
                        ctx = GuardContext("bench", "bench", "default", "r")
                        pii.answered(ctx, [answer])
                        await asyncio.gather(*list(pii._background))
                turns.append(per)
            t1 = sorted(p[0] for p in turns)[1]
            t20 = sorted(p[19] for p in turns)[1]
            label = "answers analysed after responding (as the gateway does)" if prewarm else "no answer prewarm"
            print(
                f"20-turn conversation, 300-char turns, median of 3, {label}:  turn 1 {t1:.1f} ms   "
                f"turn 20 {t20:.1f} ms   ratio {t20 / t1:.2f}x"
            )

        lags: list[float] = []
        stop = False

        async def ticker() -> None:
            while not stop:
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append((time.perf_counter() - t - 0.001) * 1000)

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        long_ms = await once([{"role": "user", "content": text_of(16000, rng)}])
        stop = True
        await tick
        print(
            f"event loop while a 16,000-char prompt was analysed ({long_ms:.0f} ms): {len(lags)} ticks of 1 ms ran, "
            f"max lag {max(lags):.1f} ms, p99 lag {pct(lags, 99):.1f} ms"
        )
        await client.aclose()
        pipe.close()
    finally:
        redis.stop()


if __name__ == "__main__":
    asyncio.run(main())
