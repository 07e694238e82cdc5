"""What the code-aware filter (guardrails/pii/code_spans.py) adds to a PII analysis: the time of
`code_hits` alone on Presidio's results, and whole analyses with and without it, interleaved so
both see the same machine load.

    python bench/code_spans_cost.py [--runs 20]

Prose texts come from bench/pii_latency.py's generator; technical texts are the clean technical
dev set (tests/data/clean_tech_dev.jsonl) joined and cut to size.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from _harness import ROOT, machine
from pii_latency import text_of


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    from guardrails.pii import analyzer as analyzer_module
    from guardrails.pii.code_spans import code_hits
    from guardrails.pii.engine import build_analyzer
    from guardrails.pii.normalize import normalize

    engine = build_analyzer()
    analyzer = analyzer_module.PiiAnalyzer(engine)
    technical = "\n\n".join(
        json.loads(line)["text"] for line in (ROOT / "tests/data/clean_tech_dev.jsonl").read_text().splitlines()
    )
    rng = random.Random(7)
    print(f"# bench/code_spans_cost.py  {time.strftime('%Y-%m-%d')}  {machine()}  runs={args.runs}")
    for kind in ("prose", "technical"):
        for n in (200, 2000, 16000):
            texts = [
                text_of(n, rng) if kind == "prose" else technical[(k * 977) % (len(technical) - n) :][:n]
                for k in range(args.runs)
            ]
            filt, with_f, without_f = [], [], []
            for text in texts:
                norm = normalize(text).text
                results = engine.analyze(text=norm, language="en", entities=None, score_threshold=0.0)
                t = time.perf_counter()
                code_hits(norm, results)
                filt.append((time.perf_counter() - t) * 1000)
                for on in (True, False):
                    analyzer_module.code_hits = code_hits if on else (lambda _t, _r: set())
                    t = time.perf_counter()
                    analyzer.analyze_sync(text, None)
                    (with_f if on else without_f).append((time.perf_counter() - t) * 1000)
            analyzer_module.code_hits = code_hits
            print(
                f"{kind:<9} {n:>6} chars   code_hits p50 {statistics.median(filt):6.2f} ms  max {max(filt):6.2f} ms   "
                f"analysis p50 with {statistics.median(with_f):7.1f} ms, without {statistics.median(without_f):7.1f} ms"
            )


if __name__ == "__main__":
    main()
