"""Latency of guardrails.pii.normalize.normalize(): p50/p95 at 200, 2,000 and 16,000 characters of
mixed non-ASCII text (accents, Cyrillic, CJK, emoji, and obfuscations that normalization changes:
zero-width and bidi characters, soft hyphens, fullwidth "＠" and digits, ligatures), of
non-ASCII text that needs no change, and of ASCII text.

    python bench/normalize_latency.py [--runs 2000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guardrails.pii.normalize import normalize

PLAIN = [
    "Grüße aus Köln, schreiben Sie an",
    "Привет, напишите",
    "请联系",
    "café crème brûlée",
    "naïve résumé",
    "Zsófia Kertész",
    "Đurđa Jovanović",
    "🙂 👍",
    "the invoice is due next week",
    "ok",
]
OBFUSCATED = [
    "jo\u200bhn.doe＠example．com",
    "4111\u2060 1111 1111 1111",
    "０２０ ７９４６ ０９５８",
    "Ｎａｍｅ",
    "078\u00ad-05-1120",
    "\ufeffGB82 WEST 1234 5698 7654 32",
    "\u202eevil\u202c",
    "ﬁle ½ ①",
]
ASCII = [
    "Please update the shipping address for customer",
    "john.doe@example.com",
    "call (212) 555-0143",
    "the deployment is scheduled",
    "card 4111 1111 1111 1111",
    "and",
    "the",
]


def text_of(n: int, words: list[str], rng: random.Random) -> str:
    out: list[str] = []
    size = 0
    while size < n:
        w = rng.choice(words)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000)
    args = ap.parse_args()
    rng = random.Random(7)
    kinds = {"mixed non-ASCII": PLAIN + OBFUSCATED, "non-ASCII, unchanged": PLAIN, "ASCII": ASCII}
    print(f"{'text':<22}{'chars':>7}{'p50 ms':>10}{'p95 ms':>10}")
    for kind, words in kinds.items():
        for n in (200, 2_000, 16_000):
            texts = [text_of(n, words, rng) for _ in range(50)]  # distinct texts, cycled
            for t in texts:
                normalize(t)  # fill the character tables once, as a running gateway has
            times = []
            for i in range(args.runs):
                t = texts[i % len(texts)]
                t0 = time.perf_counter()
                normalize(t)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"{kind:<22}{n:>7}{pct(times, 50):>10.4f}{pct(times, 95):>10.4f}")


if __name__ == "__main__":
    main()
