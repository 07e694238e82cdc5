"""PII detection quality through the real guardrail (default policy, Presidio + spaCy + gazetteers,
Redis vault), on labeled and clean sets, tuned and untuned.

For each labeled set: leak rate per entity type (share of values that reach the backend verbatim),
for the protected types together and for structured identifiers apart; a stricter PERSON figure
(a name counts as leaked when any of its words survives as a word of the masked text); and the
placeholder round trip: the masked text is echoed back as the model's answer through the output
filter, and each masked value must come back exactly where it was (whole and streamed in 7-character
chunks). For each clean set (and the clean messages of a labeled one): the share of texts altered.

    python bench/pii_quality.py [--policy default] [--set NAME ...] [--untuned] [--show-leaks 10]

`--show-leaks` prints examples from tuning sets only; reading an untuned set's leaks to change the
detector makes it a tuning set (say so in tests/data/README.md), so they print only with
`--show-untuned` as well.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("MIXGUARD_VAULT_KEY", "bench-key")

from _harness import ROOT, RedisProc, machine
from guardrails.pii.token_ner import CLASSIFIERS

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
STRUCTURED = ["CREDIT_CARD", "IBAN_CODE", "US_SSN", "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS"]


@dataclass(frozen=True)
class DataSet:
    kind: str  # "labeled" or "clean"
    tuned: bool  # its leaks or over-masks were read to change the detector
    about: str


#: tests/data/README.md tells how each was made and in which order the tuning sets were used.
SETS = {
    # presidio-evaluator's generator (Faker names: the gazetteer's own source) and templates
    "pii_labeled": DataSet("labeled", True, "same-generator tuning set"),
    "pii_dev": DataSet("labeled", True, "same-generator tuning set, seed 11"),
    "pii_dev2": DataSet("labeled", True, "same-generator tuning set, seed 23"),
    "pii_heldout": DataSet("labeled", False, "same generator, seed 7: held out, but its names are the gazetteer's"),
    "pii_heldout2": DataSet("labeled", True, "same-generator, seed 31: held out for one run, then tuned on"),
    "pii_heldout3": DataSet("labeled", False, "same generator, seed 47: held out, but its names are the gazetteer's"),
    "clean_prompts": DataSet("clean", True, "150 risky-looking clean prompts from 30 templates"),
    "clean_tech_dev": DataSet("clean", True, "clean technical texts, dev packages/logs/configs: a tuning set"),
    "clean_tech_dev2": DataSet(
        "clean", True, "clean technical texts, a second group of dev packages/configs: a tuning set"
    ),
    "clean_tech_dev3": DataSet(
        "clean", True, "clean technical texts, a third group of dev packages/configs: a tuning set"
    ),
    # untuned: values from sources no detector uses, committed before their first run
    "untuned_withheld": DataSet("labeled", False, "mimesis names/streets/cities absent from every gazetteer"),
    "untuned_debian": DataSet("labeled", False, "real people: Debian copyright, dpkg, METADATA, man AUTHORS"),
    "untuned_handwritten": DataSet("labeled", False, "hand-written tickets, e-mails, chats; many cultures"),
    "untuned_clean_tech": DataSet("clean", False, "docstrings, READMEs, code questions, traces, logs, configs"),
}


@dataclass
class Tally:
    total: Counter[str] = field(default_factory=Counter)
    leaked: Counter[str] = field(default_factory=Counter)
    by_source: Counter[tuple[str, bool]] = field(default_factory=Counter)
    person_words: int = 0
    person_partial: int = 0
    masked_values: int = 0
    restored: int = 0
    restored_stream: int = 0
    clean_texts: int = 0
    altered: int = 0
    altered_by_source: Counter[str] = field(default_factory=Counter)
    clean_by_source: Counter[str] = field(default_factory=Counter)
    altered_rules: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[str, str, str]] = field(default_factory=list)


def _words_kept(value: str, masked: str) -> bool:
    """True when a word of the name `value` still stands as a word in the masked text."""
    for w in re.findall(r"[^\W\d_][\w'’\-]*", value):
        if len(w) > 1 and re.search(rf"(?<![\w<]){re.escape(w)}(?![\w>])", masked):
            return True
    return False


def _restored(text: str, answer: str, span: dict) -> bool:
    """The value is back where it was (or, when an earlier leaked value was redacted in the answer
    and shifted the offsets, back as often as the prompt had it)."""
    value = span["value"]
    if answer[span["start"] : span["end"]] == value:
        return True
    return answer != text and answer.count(value) >= text.count(value)


def _close(chain: Any) -> None:
    if hasattr(chain, "close"):
        chain.close()


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}% ({a}/{b})" if b else "  n/a"


@contextlib.asynccontextmanager
async def guarded_pipeline(
    spacy_model: str | None = None, ner: str | None = None, ner_model: str | None = None
) -> AsyncIterator[Any]:
    """The gateway's guardrail pipeline (default config; the `mixguard.pii` settings `spacy_model`,
    `ner`, `ner_model` where given) bound to a Redis server started for it."""
    import redis.asyncio as aioredis

    from policies.store import PolicyStore
    from proxy.settings import parse_config
    from proxy.wiring import build_pipeline

    redis = RedisProc().start()
    try:
        cfg = parse_config(
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, api_base: 'http://127.0.0.1:1/v1'}\n"
            f"mixguard:\n  policies_dir: {ROOT / 'policies'}\n"
            + "  pii: {"
            + ", ".join(
                f"{k}: '{v}'" for k, v in (("spacy_model", spacy_model), ("ner", ner), ("ner_model", ner_model)) if v
            )
            + "}\n"
        )
        pipe = build_pipeline(cfg, PolicyStore(cfg.mixguard.policies_path()))
        client = aioredis.from_url(redis.url)
        pipe.bind_redis(client)
        yield pipe
        await client.aclose()
        pipe.close()
    finally:
        redis.stop()


async def measure(
    pipe: Any,
    names: list[str],
    policy: str = "default",
    on_set: Callable[[str, DataSet, list[dict], Tally, float], None] | None = None,
) -> dict[str, Tally]:
    """Each set of `names` through `pipe`: its Tally (`on_set` is called as each set ends)."""
    from guardrails.base import GuardContext

    data = {n: [json.loads(line) for line in (ROOT / f"tests/data/{n}.jsonl").read_text().splitlines()] for n in names}

    async def run(text: str, conv: str) -> tuple[str | None, str, str, list]:
        """(masked text or None when refused, restored answer, restored streamed answer, decisions)"""
        ctx = GuardContext("q", "q", policy, "r", conversation_id=conv)
        body = {"messages": [{"role": "user", "content": text}]}
        if not (await pipe.check_input(ctx, "chat", body)).allowed:
            return None, "", "", ctx.decisions  # refused: nothing reaches the backend
        masked = body["messages"][0]["content"]
        chain = pipe.output_chain(ctx)
        if chain is None:
            return masked, masked, masked, ctx.decisions
        # the gateway's way: atext/aflush where the chain has them (its filters may analyse the answer)
        whole = await chain.atext(masked) if hasattr(chain, "atext") else chain.text(masked)
        _close(chain)
        chain = pipe.output_chain(ctx)
        assert chain is not None
        streamed = "".join(chain.feed(masked[i : i + 7]) for i in range(0, len(masked), 7))
        streamed += await chain.aflush() if hasattr(chain, "aflush") else chain.flush()
        _close(chain)
        return masked, whole, streamed, ctx.decisions

    tallies: dict[str, Tally] = {}
    for name in names:
        spec, records = SETS[name], data[name]
        tally = tallies[name] = Tally()
        t0 = time.perf_counter()
        for i, rec in enumerate(records):
            result, whole, streamed, decisions = await run(rec["text"], f"{name}-{i}")
            source = rec.get("source", "").split(":")[0]
            if result is None:
                # blocked by a rule (an SSN), or analysis failed: the request never reaches a model
                tally.refused[next((d.rule_id for d in decisions if d.action == "block"), "?")] += 1
            masked = result or ""
            if not rec.get("spans"):
                tally.clean_texts += 1
                tally.clean_by_source[source] += 1
                if result is not None and masked != rec["text"]:
                    tally.altered += 1
                    tally.altered_by_source[source] += 1
                    tally.altered_rules.update({d.rule_id for d in decisions if d.rule_id.startswith("pii.")})
                    tally.examples.append(("over-mask", ",".join(sorted({d.rule_id for d in decisions})), masked))
                continue
            for s in rec["spans"]:
                kind, value = s["type"], s["value"]
                tally.total[kind] += 1
                leaked = value in masked
                tally.by_source[(source, leaked)] += 1
                if leaked:
                    tally.leaked[kind] += 1
                    if kind in PROTECTED:
                        tally.examples.append((kind, value, masked))
                elif result is not None:  # a refused text is answered by no model: nothing to restore
                    tally.masked_values += 1
                    tally.restored += _restored(rec["text"], whole, s)
                    tally.restored_stream += _restored(rec["text"], streamed, s)
                if kind == "PERSON":
                    tally.person_words += 1
                    tally.person_partial += _words_kept(value, masked)
        if on_set is not None:
            on_set(name, spec, records, tally, time.perf_counter() - t0)
    return tallies


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", default="default")
    ap.add_argument("--show-leaks", type=int, default=0)
    ap.add_argument("--show-untuned", action="store_true", help="also print examples from untuned sets")
    ap.add_argument("--set", action="append", choices=list(SETS), help="sets to run (default: all)")
    ap.add_argument("--untuned", action="store_true", help="only the untuned sets")
    ap.add_argument("--spacy-model", help="an installed spaCy package or a model directory (default: the config's)")
    ap.add_argument(
        "--ner", choices=["minilm+spacy", "minilm", "spacy"], help="mixguard.pii.ner (default: the config's)"
    )
    ap.add_argument("--ner-model", choices=list(CLASSIFIERS), help="mixguard.pii.ner_model (default: the config's)")
    args = ap.parse_args()

    names = args.set or [n for n, s in SETS.items() if not args.untuned or not s.tuned]
    async with guarded_pipeline(args.spacy_model, args.ner, args.ner_model) as pipe:
        print(
            f"# bench/pii_quality.py  {time.strftime('%Y-%m-%d')}  {machine()}  policy={args.policy}"
            + (f"  ner_model={args.ner_model}" if args.ner_model else "")
        )
        t_all = time.perf_counter()
        await measure(pipe, names, args.policy, lambda *a: report(*a, args))
        print(f"\n(all sets in {time.perf_counter() - t_all:.0f} s)")


def report(name: str, spec: DataSet, records: list[dict], t: Tally, seconds: float, args: argparse.Namespace) -> None:
    status = "TUNING SET" if spec.tuned else "untuned"
    print(f"\n== {name}: {len(records)} texts, {status}: {spec.about}  ({seconds:.0f} s)")
    if t.total:
        for kind in sorted(t.total, key=lambda k: (k not in PROTECTED, k)):
            tag = "" if kind in PROTECTED else "  (not protected by default)"
            print(f"  {kind:<18} leak {_pct(t.leaked[kind], t.total[kind])}{tag}")
        p_tot, p_leak = sum(t.total[k] for k in PROTECTED), sum(t.leaked[k] for k in PROTECTED)
        s_tot, s_leak = sum(t.total[k] for k in STRUCTURED), sum(t.leaked[k] for k in STRUCTURED)
        print(f"leak rate, protected types:        {_pct(p_leak, p_tot)}   target <= 3%")
        print(f"leak rate, structured identifiers: {_pct(s_leak, s_tot)}   target <= 1%")
        print(f"PERSON with any word left visible: {_pct(t.person_partial, t.person_words)}")
        sources = sorted({s for s, _ in t.by_source})
        if len(sources) > 1:
            per = ", ".join(
                f"{s} {_pct(t.by_source[(s, True)], t.by_source[(s, True)] + t.by_source[(s, False)])}" for s in sources
            )
            print(f"leak by source: {per}")
        print(
            f"round trip, masked values restored exactly: whole {_pct(t.restored, t.masked_values)}, "
            f"streamed {_pct(t.restored_stream, t.masked_values)}"
        )
    if t.clean_texts:
        label = "clean texts altered (over-masking)" if not t.total else "clean messages altered"
        print(f"{label}: {_pct(t.altered, t.clean_texts)}   target <= 3%")
        if len(t.clean_by_source) > 1:
            print(
                "  by source: "
                + ", ".join(f"{s} {_pct(t.altered_by_source[s], n)}" for s, n in sorted(t.clean_by_source.items()))
            )
        if t.altered_rules:
            print("  texts altered per entity: " + ", ".join(f"{r[4:]} {n}" for r, n in t.altered_rules.most_common()))
    if t.refused:
        print(
            "texts refused (nothing sent; not counted as leaks or over-masks): "
            + ", ".join(f"{r} {n}" for r, n in t.refused.items())
        )
    if args.show_leaks and (spec.tuned or args.show_untuned):
        for what, value, out in t.examples[: args.show_leaks]:
            print(f"    {what}: {value!r} in {out[:200]!r}")


if __name__ == "__main__":
    asyncio.run(main())
