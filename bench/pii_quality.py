"""PII detection quality through the real guardrail: leak rate per entity type on the labeled sets
(share of PII values that would reach the backend verbatim) and false-positive rate on clean prompts.

    python bench/pii_quality.py [--policy default] [--show-leaks 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter

os.environ.setdefault("MIXGUARD_VAULT_KEY", "bench-key")

from _harness import ROOT, RedisProc, machine

#: Types the guardrail must protect; the others in the set are reported for information.
PROTECTED = [
    "PERSON",
    "STREET_ADDRESS",
    "PHONE_NUMBER",
    "EMAIL_ADDRESS",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "GPE",
]
#: The recognizers were tuned looking at the leaks of pii_labeled, then pii_dev, then pii_dev2, then pii_heldout2 (after
#: one untouched run); pii_heldout and pii_heldout3 (same generator and templates, other seeds: other names, places and
#: numbers) were never looked at beyond their totals. tests/data/README.md tells the order.
SETS = {
    "pii_labeled": "tuning set",
    "pii_dev": "second tuning set, seed 11",
    "pii_dev2": "third tuning set, seed 23",
    "pii_heldout": "held-out set, never tuned on",
    "pii_heldout2": "seed 31: held out for one run, then tuned on",
    "pii_heldout3": "third held-out set, seed 47, never tuned on",
}
STRUCTURED = ["CREDIT_CARD", "IBAN_CODE", "US_SSN", "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS"]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", default="default")
    ap.add_argument("--show-leaks", type=int, default=0)
    ap.add_argument("--set", action="append", choices=list(SETS), help="labeled sets to run (default: all)")
    ap.add_argument("--spacy-model", help="an installed spaCy package or a model directory (default: the config's)")
    args = ap.parse_args()
    import redis.asyncio as aioredis

    from guardrails.base import GuardContext
    from policies.store import PolicyStore
    from proxy.settings import parse_config
    from proxy.wiring import build_pipeline

    labeled = {
        name: [json.loads(line) for line in (ROOT / f"tests/data/{name}.jsonl").read_text().splitlines()]
        for name in (args.set or SETS)
    }
    clean = [json.loads(line)["text"] for line in (ROOT / "tests/data/clean_prompts.jsonl").read_text().splitlines()]
    redis = RedisProc().start()
    try:
        cfg = parse_config(
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, api_base: 'http://127.0.0.1:1/v1'}\n"
            f"mixguard:\n  policies_dir: {ROOT / 'policies'}\n"
            + (f"  pii: {{spacy_model: '{args.spacy_model}'}}\n" if args.spacy_model else "")
        )
        pipe = build_pipeline(cfg, PolicyStore(cfg.mixguard.policies_path()))
        client = aioredis.from_url(redis.url)
        pipe.bind_redis(client)

        async def masked(text: str, i: int) -> tuple[str, list]:
            ctx = GuardContext("q", "q", args.policy, "r", conversation_id=f"c{i}")
            body = {"messages": [{"role": "user", "content": text}]}
            if not (await pipe.check_input(ctx, "chat", body)).allowed:
                return "", ctx.decisions  # blocked: nothing reaches the backend
            return body["messages"][0]["content"], ctx.decisions

        fps = []
        for i, text in enumerate(clean):
            out, decisions = await masked(text, 10_000 + i)
            if out != text:
                fps.append((text, [d.rule_id for d in decisions]))
        print(
            f"# bench/pii_quality.py  {time.strftime('%Y-%m-%d')}  {machine()}  policy={args.policy}  "
            f"{len(clean)} clean prompts"
        )
        for name, records in labeled.items():
            total, leaked = Counter(), Counter()
            examples = []
            for i, rec in enumerate(records):
                out, _ = await masked(rec["text"], i)
                for s in rec["spans"]:
                    total[s["type"]] += 1
                    if s["value"] in out:
                        leaked[s["type"]] += 1
                        examples.append((s["type"], s["value"], out))
            print(f"\n== {name}: {len(records)} labeled sentences ({SETS[name]})")
            for t in sorted(total, key=lambda t: (t not in PROTECTED, t)):
                tag = "" if t in PROTECTED else "  (not protected by default)"
                print(f"  {t:<18} leak {100 * leaked[t] / total[t]:5.1f}%  ({leaked[t]}/{total[t]}){tag}")
            p_tot = sum(total[t] for t in PROTECTED)
            p_leak = sum(leaked[t] for t in PROTECTED)
            s_tot = sum(total[t] for t in STRUCTURED)
            s_leak = sum(leaked[t] for t in STRUCTURED)
            print(f"leak rate, protected types: {100 * p_leak / p_tot:.1f}% ({p_leak}/{p_tot})   target <= 3%")
            print(
                f"leak rate, structured identifiers: {100 * s_leak / max(s_tot, 1):.1f}% ({s_leak}/{s_tot})   target <= 1%"
            )
            for t, v, out in examples[: args.show_leaks]:
                print(f"    leak {t}: {v!r} in {out[:160]!r}")
        print(
            f"\nfalse positives on clean prompts: {100 * len(fps) / len(clean):.1f}% ({len(fps)}/{len(clean)})   target <= 3%"
        )
        for text, rules in fps[: args.show_leaks]:
            print(f"    false positive {rules}: {text[:90]!r}")
        await client.aclose()
    finally:
        redis.stop()


if __name__ == "__main__":
    asyncio.run(main())
