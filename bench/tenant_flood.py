"""One key floods, another key's latency (issue 13, item 5): p50 of a quiet key's small PII requests
with the gateway idle, then while a noisy key keeps `--flood` requests of `--messages` fresh messages
each in flight (as large as the default policy allows: 2,048 messages per request). Target: the quiet
key's p50 under the flood within 2x of idle.

    python bench/tenant_flood.py [--requests 60] [--flood 2] [--messages 2000]

Run it twice with `--per-key-workers 1` to see the per-key limit's effect.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # noqa: E402

from procs import Gateway, RedisProc, Standin, gateway_config  # noqa: E402

QUIET = "sk-other-app-key"  # the second key of procs.gateway_config
WORDS = [
    "order",
    "parcel",
    "refund",
    "invoice",
    "delivery",
    "late",
    "damaged",
    "courier",
    "address",
    "support",
    "ticket",
]


def small_body(i: int) -> dict:
    return {"model": "mixtral", "messages": [{"role": "user", "content": f"Call Dana Whitfield at 415-555-{i:04d}."}]}


def flood_body(n: int, messages: int) -> dict:
    """`messages` distinct short messages (fresh each time: no analysis cache hit)."""
    msgs = [
        {"role": "user" if k % 2 == 0 else "assistant", "content": f"{n}-{k}: " + " ".join(WORDS[(n + k) % 7 :])}
        for k in range(messages)
    ]
    return {"model": "mixtral", "messages": msgs}


async def quiet_p50(client: httpx.AsyncClient, requests: int, offset: int) -> tuple[float, int]:
    times, errors = [], 0
    for i in range(requests):
        t = time.perf_counter()
        r = await client.post(
            "/v1/chat/completions", json=small_body(offset + i), headers={"Authorization": f"Bearer {QUIET}"}
        )
        times.append(time.perf_counter() - t)
        errors += r.status_code != 200
        await asyncio.sleep(0.02)
    return statistics.median(times) * 1000, errors


async def run(args: argparse.Namespace, gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=120) as client:
        await asyncio.sleep(args.settle)  # the worker processes load spaCy (short texts use threads until then)
        await quiet_p50(client, 10, 9000)  # warm-up
        idle, idle_err = await quiet_p50(client, args.requests, 0)
        stop = asyncio.Event()
        counter = itertools.count()
        flood_done, flood_status = [0], []

        async def flood() -> None:
            while not stop.is_set():
                r = await client.post(
                    "/v1/chat/completions",
                    json=flood_body(next(counter), args.messages),
                    headers={"Authorization": f"Bearer {Gateway.KEY}"},
                )
                flood_done[0] += 1
                flood_status.append(r.status_code)

        tasks = [asyncio.create_task(flood()) for _ in range(args.flood)]
        await asyncio.sleep(1.0)
        loaded, loaded_err = await quiet_p50(client, args.requests, 5000)
        stop.set()
        await asyncio.gather(*tasks)
    where = "threads" if args.threads else "worker processes"
    print(
        f"analysis in {where}; per-key workers: {args.per_key_workers or 'all'}; flood: {args.flood} x {args.messages}"
    )
    print(f"quiet key p50 idle: {idle:.1f} ms ({idle_err} errors)")
    print(f"quiet key p50 while the other key floods: {loaded:.1f} ms ({loaded_err} errors)")
    print(
        f"ratio: {loaded / idle:.2f}x (target <= 2x); flood requests finished: {flood_done[0]} {sorted(set(flood_status))}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--flood", type=int, default=2, help="flood requests in flight at once")
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--per-key-workers", type=int)
    ap.add_argument("--settle", type=float, default=25.0, help="seconds for the worker processes to load")
    ap.add_argument("--threads", action="store_true", help="short texts in threads of the gateway (the old way)")
    args = ap.parse_args()
    redis = RedisProc().start()
    standin = Standin()
    # the gateway's default: 2 worker processes, short texts there once they have loaded
    pii: dict = {"long_text_processes": 2, "short_texts_in_processes": not args.threads}
    if args.per_key_workers:
        pii["analysis_workers_per_key"] = args.per_key_workers
    gateway = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"{standin.url}/v1"}, redis_url=redis.url, extra={"pii": pii}
        )
    )
    try:
        asyncio.run(run(args, gateway))
    finally:
        gateway.stop()
        standin.stop()
        redis.stop()


if __name__ == "__main__":
    main()
