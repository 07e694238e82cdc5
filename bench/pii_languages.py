"""PII leak per language (French, German, Spanish, Italian) through the real guardrail, and the
guardrail's latency on text of each language.

    python bench/pii_languages.py [--set untuned_eu_messages2] [--show-leaks 10] [--runs 20]

--show-leaks prints the leaked values of the tuning set only: the untuned sets report totals.

Leak: share of labeled values that reach the backend verbatim under the default policy (as
bench/pii_quality.py counts it). Over-masking: share of the words outside any labeled value that
no longer reach the backend. Latency: p50/p99 of the input guardrail on fresh 200- and
2,000-character texts made of the set's messages of one language (never a cache hit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import time
from collections import Counter, defaultdict

os.environ.setdefault("MIXGUARD_VAULT_KEY", "bench-key")

from _harness import ROOT, RedisProc, machine, pct

#: tests/data/README.md tells how each set was made and which were tuned on.
SETS = {
    "untuned_eu_messages": "65 hand-written support messages, never tuned on; its leaks were printed once, "
    "by the baseline run before any change",
    "untuned_eu_messages2": "40 hand-written messages in other styles (signatures, chats, forms), written "
    "after that run, never looked at beyond these totals",
    "eu_dev": "20 hand-written messages, the tuning set",
}
LANGS = ("fr", "de", "es", "it")
STRUCTURED = {
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "FR_NIR",
    "DE_TAX_ID",
    "DE_ID_CARD",
    "ES_NIF",
    "ES_NIE",
    "IT_FISCAL_CODE",
}
_WORD = re.compile(r"[^\W\d_]{3,}")


def outside_words(text: str, spans: list[dict]) -> list[str]:
    """Words of `text` outside every labeled value (what masking should leave alone)."""
    keep, last = [], 0
    for s in sorted(spans, key=lambda s: s["start"]):
        keep.append(text[last : s["start"]])
        last = max(last, s["end"])
    keep.append(text[last:])
    return _WORD.findall(" ".join(keep))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", action="append", choices=list(SETS), help="labeled sets to run (default: all)")
    ap.add_argument("--policy", default="default")
    ap.add_argument("--show-leaks", type=int, default=0)
    ap.add_argument("--runs", type=int, default=20, help="latency runs per language and length (0: none)")
    args = ap.parse_args()
    import redis.asyncio as aioredis

    from guardrails.base import GuardContext
    from policies.store import PolicyStore
    from proxy.settings import parse_config
    from proxy.wiring import build_pipeline

    redis = RedisProc().start()
    try:
        t0 = time.perf_counter()
        cfg = parse_config(
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, api_base: 'http://127.0.0.1:1/v1'}\n"
            f"mixguard:\n  policies_dir: {ROOT / 'policies'}\n"
        )
        pipe = build_pipeline(cfg, PolicyStore(cfg.mixguard.policies_path()))
        build_s = time.perf_counter() - t0
        client = aioredis.from_url(redis.url)
        pipe.bind_redis(client)
        print(
            f"# bench/pii_languages.py  {time.strftime('%Y-%m-%d')}  {machine()}  policy={args.policy}  "
            f"(engine build {build_s:.1f} s)"
        )

        async def masked(text: str, i: int) -> str:
            ctx = GuardContext("q", "q", args.policy, "r", conversation_id=f"c{i}")
            body = {"messages": [{"role": "user", "content": text}]}
            if not (await pipe.check_input(ctx, "chat", body)).allowed:
                return ""  # blocked: nothing reaches the backend
            return str(body["messages"][0]["content"])

        sets = {n: [json.loads(x) for x in (ROOT / f"tests/data/{n}.jsonl").read_text().splitlines()] for n in SETS}
        for name in args.set or SETS:
            total: dict[str, Counter[str]] = defaultdict(Counter)
            leaked: dict[str, Counter[str]] = defaultdict(Counter)
            words, altered = Counter[str](), Counter[str]()
            examples = []
            for i, rec in enumerate(sets[name]):
                out = await masked(rec["text"], i)
                lang = rec["lang"]
                for s in rec["spans"]:
                    total[lang][s["type"]] += 1
                    if s["value"] in out:
                        leaked[lang][s["type"]] += 1
                        examples.append((lang, s["type"], s["value"], out))
                left = _WORD.findall(out)
                for w in outside_words(rec["text"], rec["spans"]):
                    words[lang] += 1
                    altered[lang] += w not in left
            print(f"\n== {name}: {len(sets[name])} messages ({SETS[name]})")
            all_t, all_l, st_t, st_l = 0, 0, 0, 0
            for lang in LANGS:
                t, lk = sum(total[lang].values()), sum(leaked[lang].values())
                all_t, all_l = all_t + t, all_l + lk
                st_t += sum(v for k, v in total[lang].items() if k in STRUCTURED)
                st_l += sum(v for k, v in leaked[lang].items() if k in STRUCTURED)
                kinds = ", ".join(f"{k} {leaked[lang][k]}/{total[lang][k]}" for k in sorted(total[lang]))
                print(
                    f"  {lang}  leak {100 * lk / max(t, 1):5.1f}% ({lk}/{t})   over-masked words "
                    f"{100 * altered[lang] / max(words[lang], 1):4.1f}%   [{kinds}]"
                )
            print(f"leak, all four languages: {100 * all_l / max(all_t, 1):.1f}% ({all_l}/{all_t})   target <= 5%")
            print(f"leak, structured identifiers: {100 * st_l / max(st_t, 1):.1f}% ({st_l}/{st_t})")
            for lang, t, v, out in examples[: args.show_leaks if name == "eu_dev" else 0]:
                print(f"    leak {lang} {t}: {v!r} in {out[:160]!r}")

        if args.runs:
            rng = random.Random(5)
            pool = [r["text"] for n in SETS for r in sets[n]]
            by_lang = {lang: [r["text"] for n in SETS for r in sets[n] if r["lang"] == lang] for lang in LANGS}
            print("\nlatency of the input guardrail, fresh text of one language:")
            await masked(" ".join(pool[:10]), 0)  # warm-up
            for lang, texts in by_lang.items():
                line = [f"  {lang}"]
                for n in (200, 2000):
                    lat = []
                    for k in range(args.runs):
                        picked = rng.sample(texts, len(texts))
                        text = (f"Ticket {rng.randint(10**5, 10**6)}. " + " ".join(picked * 4))[:n]
                        t = time.perf_counter()
                        await masked(text, 50_000 + k)
                        lat.append((time.perf_counter() - t) * 1000)
                    line.append(f"{n:>5} chars p50 {pct(lat, 50):6.1f} ms p99 {pct(lat, 99):6.1f} ms")
                print("   ".join(line))
        await client.aclose()
        pipe.close()
    finally:
        redis.stop()


if __name__ == "__main__":
    asyncio.run(main())
