"""Added latency and throughput of the gateway vs LiteLLM's proxy, against one stand-in, one run.

    python bench/overhead.py [--requests 400] [--seconds 8] [--concurrency 32]

Prints p50/p99 of direct calls to the stand-in, through mixguard (PII off, one worker; the same with
auditing off, to price the audit record; a key with rate limits, to price the limiter; with the PII
guardrail on, and with the response cache on answering the same body from Redis, for information) and
through LiteLLM's proxy (`litellm[proxy]`, no database, one worker), the added latency of each,
requests/s at the given concurrency, and the ratios. Also times litellm.Router.acompletion alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from _harness import (
    Gateway,
    RedisProc,
    Standin,
    gateway_config,
    interleaved_latency,
    machine,
    pct,
    start_litellm_proxy,
    summary,
    throughput,
)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
BODY = {
    "model": "mixtral",
    "messages": [{"role": "user", "content": "Summarise the quarterly report in one line."}],
    "max_tokens": 32,
}


async def router_alone(standin: Standin, n: int) -> list[float]:
    import litellm

    router = litellm.Router(
        model_list=[
            {
                "model_name": "mixtral",
                "litellm_params": {"model": "openai/mixtral", "api_base": f"{standin.url}/v1", "api_key": "none"},
            }
        ]
    )
    out = []
    for i in range(n + 50):
        t0 = time.perf_counter()
        await router.acompletion(model="mixtral", messages=BODY["messages"], max_tokens=32)
        if i >= 50:
            out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--skip-litellm", action="store_true")
    args = ap.parse_args()

    redis = RedisProc().start()
    standin = Standin()
    primary = {"model": "openai/mixtral", "api_base": f"{standin.url}/v1"}
    cfg = gateway_config(primary, redis_url=redis.url, extra={"pii": {"enabled": False}})
    # the same gateway, another key with (never reached) rate limits: prices the limiter's Redis call
    cfg["mixguard"]["api_keys"].append(
        {"key": "sk-bench-limited", "app": "bench", "id": "limited", "rpm_limit": 10**9, "tpm_limit": 10**12}
    )
    gw = Gateway(cfg, wait_ready=True)
    gw_noaudit = Gateway(
        gateway_config(primary, redis_url=redis.url, extra={"pii": {"enabled": False}, "audit": {"enabled": False}}),
        wait_ready=True,
    )
    gw_pii = Gateway(gateway_config(primary, redis_url=redis.url), wait_ready=True)
    gw_cache = Gateway(
        gateway_config(primary, redis_url=redis.url, extra={"response_cache": {"enabled": True}}), wait_ready=True
    )
    procs = [gw, gw_noaudit, gw_pii, gw_cache, standin]
    lp = None
    try:
        auth = {"Authorization": f"Bearer {Gateway.KEY}"}
        targets = {
            "direct (stand-in)": (f"{standin.url}/v1/chat/completions", {}),
            "mixguard": (f"{gw.url}/v1/chat/completions", auth),
            "mixguard audit off": (f"{gw_noaudit.url}/v1/chat/completions", auth),
            "mixguard rate-limited key": (
                f"{gw.url}/v1/chat/completions",
                {"Authorization": "Bearer sk-bench-limited"},
            ),
            "mixguard+PII cached": (f"{gw_pii.url}/v1/chat/completions", auth),
            # same body every time: after the first request, answered from the response cache
            "mixguard+PII resp-cache hit": (f"{gw_cache.url}/v1/chat/completions", auth),
        }
        if not args.skip_litellm:
            lp, lurl = start_litellm_proxy(standin)
            targets["litellm proxy"] = (f"{lurl}/v1/chat/completions", {"Authorization": "Bearer sk-bench"})
        print(
            f"# bench/overhead.py  {time.strftime('%Y-%m-%d')}  {machine()}  requests={args.requests} "
            f"concurrency={args.concurrency} seconds={args.seconds}"
        )
        lat, rps = {}, {}
        lat = asyncio.run(interleaved_latency(targets, BODY, args.requests))
        for name, (url, hdr) in targets.items():
            rps[name] = asyncio.run(throughput(url, hdr, BODY, args.concurrency, args.seconds))
        direct = pct(lat["direct (stand-in)"], 50)
        for name in targets:
            print(summary(name, lat[name]) + f"   {rps[name]:8.0f} req/s @{args.concurrency}")
        print()
        for name in targets:
            if name.startswith("direct"):
                continue
            add50 = pct(lat[name], 50) - direct
            add99 = pct(lat[name], 99) - pct(lat["direct (stand-in)"], 99)
            print(f"added latency {name:<20} p50 {add50:6.2f} ms   p99 {add99:6.2f} ms")
        if "litellm proxy" in rps:
            print(f"throughput ratio mixguard / litellm proxy: {rps['mixguard'] / rps['litellm proxy']:.1f}x")
            add_m = pct(lat["mixguard"], 50) - direct
            add_l = pct(lat["litellm proxy"], 50) - direct
            print(f"added-latency ratio litellm proxy / mixguard (p50): {add_l / max(add_m, 1e-3):.1f}x")
        print(f"throughput ratio mixguard / direct: {rps['mixguard'] / rps['direct (stand-in)']:.2f}")
        audit50 = pct(lat["mixguard"], 50) - pct(lat["mixguard audit off"], 50)
        print(
            f"auditing adds p50 {audit50:.3f} ms (target <= 0.3 ms); throughput with/without auditing: "
            f"{rps['mixguard'] / rps['mixguard audit off']:.2f}"
        )
        limit50 = pct(lat["mixguard rate-limited key"], 50) - pct(lat["mixguard"], 50)
        print(
            f"rate limits (rpm + tpm) add p50 {limit50:.3f} ms; throughput with/without: "
            f"{rps['mixguard rate-limited key'] / rps['mixguard']:.2f}"
        )
        if not args.skip_litellm:
            r = asyncio.run(router_alone(standin, min(args.requests, 200)))
            print(f"litellm.Router.acompletion alone adds p50 {pct(r, 50) - direct:.2f} ms over direct")
    finally:
        if lp is not None:
            lp.terminate()
        for p in procs:
            p.stop()
        redis.stop()


if __name__ == "__main__":
    main()
