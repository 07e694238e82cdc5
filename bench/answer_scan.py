"""What scanning the model's answer for names costs (issue 14, item 6): time to the last token of a
streamed answer, and the latency of a whole answer, with the default policy's answer scan (names and
addresses by the analyzer with NER, identifiers by pattern) against the same policy with
`output_action: allow` (placeholders restored, nothing scanned), requests alternating, one run.

    python bench/answer_scan.py [--n 15] [--sizes 1000 4000] [--token-ms 0 10]

Each answer is fresh (its names and numbers drawn anew, so no analysis is served from cache) and
holds an invented name every other sentence. `--token-ms` is the stand-in's pause per token: 0 is a
backend that answers at once (every analysis lands on the caller's wait), 10 is about a model's
pace of 100 tokens/s, where analysis runs between tokens. Target: <= 20 ms added to time-to-last-token
per 1,000 characters.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import yaml

from _harness import ROOT, Gateway, RedisProc, Standin, gateway_config, machine, pct

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

GIVEN = ["Aurelio", "Birgitta", "Chidi", "Dagny", "Emeka", "Fumiko", "Gaspard", "Hanne", "Ilse", "Jovan"]
FAMILY = ["Ravensworth", "Okafor", "Lindqvist", "Tamura", "Beaulieu", "Marković", "Oyelaran", "Haverkamp"]
SENTENCES = [
    "The shipment you asked about left the warehouse on time and should arrive within {n} days.",
    "{name} from our logistics team checked the tracking record and found no delay.",
    "If the parcel does not arrive, reply to this message and we will open a claim for you.",
    "Our records show order {n} was paid in full, so nothing else is needed from your side.",
    "{name} will call you if the courier needs a different delivery window.",
    "You can also change the address in your account settings before the parcel is dispatched.",
]


def answer(size: int, rng: random.Random) -> str:
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < size:
        s = SENTENCES[len(parts) % len(SENTENCES)]
        parts.append(s.format(name=f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}", n=rng.randint(2, 99_999)))
    return " ".join(parts)[:size]


async def stream_once(s: aiohttp.ClientSession, url: str, key: str) -> tuple[float, float, str]:
    """(ms to the first visible content, ms to the last content, the text)"""
    body = {"model": "mixtral", "stream": True, "messages": [{"role": "user", "content": "Where is my parcel?"}]}
    t0 = time.perf_counter()
    first = last = 0.0
    text = []
    async with s.post(url, data=orjson.dumps(body), headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 200, r.status
        async for line in r.content:
            if not line.startswith(b"data: {"):
                continue
            for ch in orjson.loads(line[6:]).get("choices") or []:
                piece = (ch.get("delta") or {}).get("content")
                if piece:
                    now = (time.perf_counter() - t0) * 1000
                    first = first or now
                    last = now
                    text.append(piece)
    return first, last, "".join(text)


async def whole_once(s: aiohttp.ClientSession, url: str, key: str) -> float:
    body = {"model": "mixtral", "messages": [{"role": "user", "content": "Where is my parcel?"}]}
    t0 = time.perf_counter()
    async with s.post(url, data=orjson.dumps(body), headers={"Authorization": f"Bearer {key}"}) as r:
        await r.read()
        assert r.status == 200, r.status
    return (time.perf_counter() - t0) * 1000


async def run(g: Gateway, standin: Standin, args: argparse.Namespace) -> None:
    rng = random.Random(7)
    url = g.url + "/v1/chat/completions"
    keys = {"scan": "sk-scan", "no scan": "sk-noscan"}
    print(
        f"{'answer':>7} {'token_ms':>8} {'mode':<8} {'first visible p50':>18} {'last token p50':>15} {'whole p50':>10}"
    )
    async with aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as s:
        for size in args.sizes:
            for token_ms in args.token_ms:
                standin.configure(token_ms=token_ms)
                res: dict[str, dict[str, list[float]]] = {k: {"first": [], "last": [], "whole": []} for k in keys}
                redacted = 0
                for i in range(args.n + 2):  # two warm-up rounds
                    for mode, key in keys.items():
                        standin.configure(replies=[answer(size, rng)])
                        first, last, text = await stream_once(s, url, key)
                        standin.configure(replies=[answer(size, rng)])
                        whole = await whole_once(s, url, key)
                        if i >= 2:
                            res[mode]["first"].append(first)
                            res[mode]["last"].append(last)
                            res[mode]["whole"].append(whole)
                            redacted += mode == "scan" and "[REDACTED:PERSON]" in text
                for mode in keys:
                    r = res[mode]
                    print(
                        f"{size:>7} {token_ms:>8g} {mode:<8} {pct(r['first'], 50):>15.1f} ms"
                        f" {pct(r['last'], 50):>12.1f} ms {pct(r['whole'], 50):>7.1f} ms"
                    )
                added = pct(res["scan"]["last"], 50) - pct(res["no scan"]["last"], 50)
                added_whole = pct(res["scan"]["whole"], 50) - pct(res["no scan"]["whole"], 50)
                print(
                    f"{'':>7} {'':>8} added: last token {added:+.1f} ms = {added / size * 1000:+.1f} ms per 1,000 "
                    f"chars (target <= 20); whole answer {added_whole:+.1f} ms; "
                    f"{redacted}/{args.n} streamed answers had names redacted"
                )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=15)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--token-ms", type=float, nargs="+", default=[0.0, 10.0])
    args = ap.parse_args()
    print(f"# bench/answer_scan.py  {time.strftime('%Y-%m-%d')}  {machine()}")
    rp = RedisProc().start()
    standin = Standin()
    pdir = Path(tempfile.mkdtemp(prefix="mg-answer-scan-"))
    shutil.copy(ROOT / "policies" / "default.yaml", pdir / "default.yaml")
    noscan = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    noscan["name"] = "noscan"
    noscan["pii"]["output_action"] = "allow"
    (pdir / "noscan.yaml").write_text(yaml.safe_dump(noscan))
    cfg = gateway_config(
        {"model": "openai/mixtral", "api_base": f"{standin.url}/v1"},
        redis_url=rp.url,
        extra={"policies_dir": str(pdir)},
    )
    del cfg["mixguard"]["pii"]  # the defaults: worker processes, English + French, German, Spanish, Italian
    cfg["mixguard"]["api_keys"] = [
        {"key": "sk-scan", "app": "scan", "id": "scan", "policy": "default"},
        {"key": "sk-noscan", "app": "noscan", "id": "noscan", "policy": "noscan"},
    ]
    g = Gateway(cfg, wait_ready=True)
    try:
        asyncio.run(run(g, standin, args))
    finally:
        g.stop()
        standin.stop()
        rp.stop()


if __name__ == "__main__":
    main()
