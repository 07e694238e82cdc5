"""Fresh PII-bearing prompts at concurrency 8: mixguard vs LiteLLM's proxy with its Presidio guardrail
(issue 14, item 5: "use every core for fresh prompts"). Target: mixguard >= 5x LiteLLM's req/s, p50 <= 5 ms
at 200 characters, and leak no worse than before.

    python bench/guarded_throughput.py [--seconds 24] [--concurrency 8] [--rounds 3] [--answers distinct]

Both gateways sit in front of the same SGLang stand-in (model `mixtral`). mixguard runs its default
policy and its default `pii:` settings (languages fr/de/es/it besides English, 2 analysis threads,
2 worker processes that also take short texts), with its own Redis; a second mixguard configuration
(`--alt-pii`, JSON merged into `pii:`, labelled in the output) runs beside it. LiteLLM's proxy (no
database, one worker, as bench/overhead.py starts it) runs the `presidio` guardrail in `pre_call` mode
with `output_parse_pii`, calling Presidio's analyzer and anonymizer over HTTP (bench/presidio_http.py:
Presidio's own Flask apps under gunicorn, one worker each, as the official images run them).

By default the stand-in echoes the masked prompt: the answer then holds nothing new, so mixguard's answer
scan and its prewarm of the next turn's history cost nothing. `--answers distinct` makes it answer with
scripted text naming other people and places, each answer once, as a model would: the throughput then
includes those analyses.

Every request carries a new ~200-character user message with a name, e-mail, phone number, street and
city from Faker (seeded; never repeated, so no cache helps). Phases alternate between the targets
(`--rounds` rounds of seconds/rounds each) so machine noise lands on all alike. Reported: req/s, p50 and
p95 at the given concurrency, p50/p95 at concurrency 1 (interleaved), mixguard's own guardrail time from
its audit records (`latency_ms.guardrails`), the CPU seconds of each process during the phases (how many
cores each gateway used), and the leak: for `--leak-sample` prompts sent one at a time, the share of
inserted values that reached the stand-in verbatim (`/standin/last_request`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from _harness import (
    Gateway,
    RedisProc,
    Standin,
    free_port,
    gateway_config,
    machine,
    pct,
    start_litellm_proxy,
    wait_http,
)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
BENCH = Path(__file__).resolve().parent
KINDS = ("name", "email", "phone", "street", "city")
TEMPLATES = [
    "Hi, this is {name}. Please change my delivery address to {street}, {city}, {state} {zip} and mail "
    "the confirmation to {email}. Call {phone} if unclear. Order {n}.",
    "Customer {name} ({email}) called from {phone} about order {n}: the parcel went to {street}, {city}. "
    "Draft a short apology.",
    "Write a reminder for {name}: directions to {street}, {city} are attached; questions go to {email} "
    "or {phone}. Reference {n}.",
    "Summarise ticket {n}: {name} says the invoice sent to {email} has the wrong address ({street}, "
    "{city}, {state} {zip}); call back at {phone}.",
]


def distinct_answers(seed: int, n: int) -> list[str]:
    """Answers that name other people and places than the prompts (Faker, another seed): what a model
    writes, which the gateway's answer scan analyses and its prewarm analyses again for the next turn."""
    from faker import Faker

    f = Faker("en_US")
    f.seed_instance(seed)
    return [
        f"Certainly. I have noted that {f.name()} from {f.city()} asked about order {i:06d}; "
        f"our team in {f.city()} will reply by Monday."
        for i in range(n)
    ]


class Prompts:
    """Fresh prompts from seeded Faker values, each used once (generated ahead, outside timed phases)."""

    def __init__(self, seed: int) -> None:
        from faker import Faker

        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.made = 0
        self.pool: list[tuple[str, dict[str, str]]] = []

    def _one(self) -> tuple[str, dict[str, str]]:
        f = self.fake
        self.made += 1
        v = {
            "name": f.name(),
            "email": f.email(),
            "phone": f.phone_number(),
            "street": f.street_address(),
            "city": f.city(),
        }
        text = TEMPLATES[self.made % len(TEMPLATES)].format(
            **v, state=f.state_abbr(), zip=f.zipcode(), n=f"{self.made:06d}"
        )
        return text, v

    def ensure(self, n: int) -> None:
        while len(self.pool) < n:
            self.pool.append(self._one())

    def take(self) -> tuple[str, dict[str, str]]:
        if not self.pool:
            self.ensure(64)  # ran out mid-phase: made on the spot (ensure() before a phase avoids it)
        return self.pool.pop()


def body(text: str) -> bytes:
    return orjson.dumps({"model": "mixtral", "messages": [{"role": "user", "content": text}]})


# --- processes ------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its children not included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for t in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    for c in Path(f"/proc/{p}/task/{t}/children").read_text().split():
                        out.append(int(c))
                        todo.append(int(c))
    return out


def proc_name(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return " ".join(x.decode(errors="replace") for x in cmd if x)[:90]
    except OSError:
        return "?"


def start_presidio(service: str, workers: int) -> tuple[subprocess.Popen, str]:
    from presidio_http import command

    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix=f"presidio-{service}-", suffix=".log", delete=False)  # noqa: SIM115
    env = {**os.environ, "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""}
    p = subprocess.Popen(command(service, port, workers), stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", p, timeout=120)
    return p, url


def start_litellm(standin: Standin, analyzer: str, anonymizer: str) -> tuple[Any, str]:
    """LiteLLM's proxy with its Presidio guardrail on every request (docs.litellm.ai/docs/proxy/guardrails/
    pii_masking_v2: the analyzer and anonymizer containers' addresses in PRESIDIO_ANALYZER_API_BASE /
    PRESIDIO_ANONYMIZER_API_BASE)."""
    guardrail = {
        "guardrail": "presidio",
        "mode": "pre_call",
        "default_on": True,
        "output_parse_pii": True,  # masked values restored in the answer, as mixguard does
    }
    return start_litellm_proxy(
        standin,
        {"guardrails": [{"guardrail_name": "presidio-pii", "litellm_params": guardrail}]},
        {"PRESIDIO_ANALYZER_API_BASE": analyzer, "PRESIDIO_ANONYMIZER_API_BASE": anonymizer},
    )


# --- load -----------------------------------------------------------------------------------------------


class Target:
    def __init__(self, name: str, url: str, key: str, pids: list[int], redis: RedisProc | None = None) -> None:
        self.name, self.url, self.key, self.pids, self.redis = name, url, key, pids, redis
        self.done = 0
        self.errors: Counter[str] = Counter()
        self.elapsed = 0.0
        self.lat: list[float] = []
        self.lat1: list[float] = []
        self.windows: list[tuple[float, float]] = []  # wall-clock spans of the concurrency phases
        self.windows1: list[tuple[float, float]] = []  # and of the concurrency-1 requests
        self.cpu: Counter[int] = Counter()  # CPU seconds per pid during the concurrency phases
        self.answered = 0  # 200s of every phase (warm-up and concurrency 1 included), before the leak check

    def all_pids(self) -> list[int]:
        return sorted({q for p in self.pids for q in (p, *descendants(p))})

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}


async def phase(t: Target, prompts: Prompts, concurrency: int, seconds: float, measured: bool = True) -> None:
    pids = t.all_pids()
    cpu0 = {p: cpu_seconds(p) for p in pids}
    lat: list[float] = []
    done = 0
    errors: Counter[str] = Counter()
    stop_at = 0.0

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            text, _ = prompts.take()
            t0 = time.perf_counter()
            try:
                async with s.post(t.url + "/v1/chat/completions", data=body(text)) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                continue
            if status != 200:
                errors[str(status)] += 1
                continue
            lat.append((time.perf_counter() - t0) * 1000)
            done += 1

    conn = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=conn, headers=t.headers, timeout=timeout) as s:
        wall0, t0 = time.time(), time.perf_counter()
        stop_at = t0 + seconds
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    t.answered += done
    if measured:
        t.done += done
        t.elapsed += elapsed
        t.lat += lat
        t.errors += errors
        t.windows.append((wall0, time.time()))
        for p in pids:
            t.cpu[p] += cpu_seconds(p) - cpu0[p]


async def sequential(targets: list[Target], prompts: Prompts, n: int) -> None:
    """Concurrency 1: request i goes to every target in turn, each with its own fresh prompt."""
    sessions = {t.name: aiohttp.ClientSession(headers=t.headers) for t in targets}
    try:
        for i in range(n + 10):
            for t in targets:
                text, _ = prompts.take()
                w0, t0 = time.time(), time.perf_counter()
                async with sessions[t.name].post(t.url + "/v1/chat/completions", data=body(text)) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{t.name} -> {r.status}")
                t.answered += 1
                if i >= 10:
                    t.lat1.append((time.perf_counter() - t0) * 1000)
                    t.windows1.append((w0, time.time()))
    finally:
        for s in sessions.values():
            await s.close()


def leak_check(t: Target, standin: Standin, sample: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """Send each prompt once, read what the stand-in received; share of values that arrived verbatim."""
    leaked: Counter[str] = Counter()
    total: Counter[str] = Counter()
    restored = 0
    with httpx.Client(headers=t.headers, timeout=60) as c:
        for text, values in sample:
            r = c.post(t.url + "/v1/chat/completions", content=body(text))
            r.raise_for_status()
            answer = r.json()["choices"][0]["message"]["content"]
            restored += answer == text
            msgs = standin.last_request().get("messages") or []
            seen = " ".join(m.get("content") or "" for m in msgs if isinstance(m.get("content"), str))
            for kind, value in values.items():
                total[kind] += 1
                leaked[kind] += value in seen
    return {"leaked": leaked, "total": total, "restored": restored, "n": len(sample)}


def guard_ms(redis: RedisProc, windows: list[tuple[float, float]]) -> list[float]:
    """`latency_ms.guardrails` of the audit records written inside `windows`."""
    import redis as redis_lib

    r = redis_lib.Redis.from_url(redis.url)
    out = []
    for _, fields in r.xrange("mixguard:audit"):
        rec = orjson.loads(fields[b"r"])
        g = (rec.get("latency_ms") or {}).get("guardrails")
        ts = rec.get("ts") or 0
        if g is not None and any(a - 0.01 <= ts <= b + 0.01 for a, b in windows):
            out.append(float(g))
    r.close()
    return out


# --- main -----------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=24.0, help="measured seconds per target at --concurrency")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="alternating phases per target")
    ap.add_argument("--latency-requests", type=int, default=100, help="per target, at concurrency 1")
    ap.add_argument("--leak-sample", type=int, default=100, help="prompts sent to each target for the leak check")
    ap.add_argument("--presidio-workers", type=int, default=1, help="gunicorn workers of each Presidio service")
    ap.add_argument(
        "--alt-pii",
        default='{"short_texts_in_processes": false}',
        help="JSON merged into the second mixguard's `pii:` settings; '' for none",
    )
    ap.add_argument("--settle", type=float, default=20.0, help="seconds for mixguard's worker processes to load")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument(
        "--answers",
        choices=["echo", "distinct"],
        default="echo",
        help="echo: the stand-in answers with the masked prompt (the answer scan and prewarm cost nothing); "
        "distinct: scripted answers with other names and places, each used once, as a model's would be",
    )
    args = ap.parse_args()

    prompts = Prompts(args.seed)
    prompts.ensure(4000)
    leak_sample = [prompts.take() for _ in range(args.leak_sample)]
    standin = Standin()
    if args.answers == "distinct":
        standin.configure(replies=distinct_answers(args.seed + 1, 20_000))
    primary = {"model": "openai/mixtral", "api_base": f"{standin.url}/v1"}
    redises: list[RedisProc] = []
    gateways: list[Gateway] = []
    others: list[subprocess.Popen] = []
    targets: list[Target] = []
    try:
        configs = [("mixguard (default pii)", {})]
        if args.alt_pii:
            alt = json.loads(args.alt_pii)
            configs.append((f"mixguard (pii {json.dumps(alt, separators=(',', ':'))})", alt))
        for name, pii in configs:
            rp = RedisProc().start()  # its own Redis: no analysis-cache answers shared between gateways
            redises.append(rp)
            # procs.gateway_config's `pii:` (no worker processes, English only) replaced by the defaults
            gw = Gateway(gateway_config(primary, redis_url=rp.url, extra={"pii": dict(pii)}), wait_ready=True)
            gateways.append(gw)
            targets.append(Target(name, gw.url, Gateway.KEY, [gw.proc.pid], rp))
        pa, pa_url = start_presidio("analyzer", args.presidio_workers)
        pn, pn_url = start_presidio("anonymizer", args.presidio_workers)
        lp, lp_url = start_litellm(standin, pa_url, pn_url)
        others += [pa, pn, lp]
        targets.append(Target("litellm proxy + presidio", lp_url, "sk-bench", [lp.pid, pa.pid, pn.pid]))
        direct = Target("direct (stand-in)", standin.url, "none", [standin.proc.pid])

        time.sleep(args.settle)
        print(
            f"# bench/guarded_throughput.py  {time.strftime('%Y-%m-%d %H:%M')}  {machine()}  "
            f"load average {os.getloadavg()[0]:.2f}  concurrency={args.concurrency} seconds={args.seconds:g} "
            f"rounds={args.rounds} presidio-workers={args.presidio_workers} answers={args.answers}"
        )
        sizes = [len(t) for t, _ in prompts.pool[-500:]]
        print(f"prompts: fresh per request, {min(sizes)}-{max(sizes)} chars (mean {sum(sizes) / len(sizes):.0f})")

        async def run_all() -> None:
            for t in targets:  # warm-up: first requests, worker processes' first texts
                await phase(t, prompts, args.concurrency, 4.0, measured=False)
            await sequential([direct, *targets], prompts, 20)
            for t in [direct, *targets]:
                t.lat1.clear()
                t.windows1.clear()
            per = args.seconds / args.rounds
            rate: dict[str, float] = {}
            for r in range(args.rounds):
                order = targets[r % len(targets) :] + targets[: r % len(targets)]
                for t in order:
                    prompts.ensure(int(rate.get(t.name, 400) * per * 1.5) + 200)
                    await phase(t, prompts, args.concurrency, per)
                    rate[t.name] = t.done / max(t.elapsed, 1e-9)
            prompts.ensure((len(targets) + 1) * (args.latency_requests + 10) + 100)
            await sequential([direct, *targets], prompts, args.latency_requests)

        asyncio.run(run_all())

        print()
        print(
            f"{'target':<44} {'req/s @' + str(args.concurrency):>10} {'p50':>9} {'p95':>9}   "
            f"{'p50 @1':>8} {'p95 @1':>8}  errors"
        )
        for t in targets:
            print(
                f"{t.name:<44} {t.done / t.elapsed:10.1f} {pct(t.lat, 50):7.2f}ms {pct(t.lat, 95):7.2f}ms   "
                f"{pct(t.lat1, 50):6.2f}ms {pct(t.lat1, 95):6.2f}ms  {dict(t.errors) or 0}"
            )
        print(
            f"{direct.name:<44} {'':>10} {'':>9} {'':>9}   {pct(direct.lat1, 50):6.2f}ms {pct(direct.lat1, 95):6.2f}ms"
        )
        lite = targets[-1]
        lite_rps = lite.done / lite.elapsed
        print()
        for t in targets[:-1]:
            print(
                f"throughput ratio {t.name} / litellm: {t.done / t.elapsed / lite_rps:.2f}x   (target >= 5x)   "
                f"added p50 @1 over direct: {pct(t.lat1, 50) - pct(direct.lat1, 50):.2f} ms"
            )
        print(f"added p50 @1 over direct, litellm proxy: {pct(lite.lat1, 50) - pct(direct.lat1, 50):.2f} ms")

        print()
        print("mixguard's own guardrail time per request (audit records, latency_ms.guardrails):")
        time.sleep(1.5)  # audit records are written in batches after the answer
        for t in targets[:-1]:
            assert t.redis is not None
            g1 = guard_ms(t.redis, t.windows1)
            gc = guard_ms(t.redis, t.windows)
            if g1 and gc:
                print(
                    f"  {t.name:<42} @1: p50 {pct(g1, 50):.2f} ms p95 {pct(g1, 95):.2f} ms ({len(g1)})   "
                    f"@{args.concurrency}: p50 {pct(gc, 50):.2f} ms p95 {pct(gc, 95):.2f} ms ({len(gc)})   (target p50 <= 5 ms)"
                )

            gw = next(g for g in gateways if g.url == t.url)
            analysed = gw.metric("mixguard_pii_analysis_total", source="analyzed")
            print(f"  {'':<42} texts analysed per request: {analysed / max(1, t.answered):.2f} (prompt, answer)")

        print()
        print(f"CPU seconds per process during the @{args.concurrency} phases (cores used = CPU s / phase s):")
        for t in targets:
            print(f"  {t.name}: {t.elapsed:.1f} s of phases, {sum(t.cpu.values()) / t.elapsed:.2f} cores in all")
            for pid, s in sorted(t.cpu.items(), key=lambda x: -x[1]):
                if s >= 0.05:
                    extra = f", {threads_of(pid)} threads" if Path(f"/proc/{pid}").exists() else ""
                    print(f"    {s / t.elapsed:5.2f} cores  pid {pid}{extra}  {proc_name(pid)}")

        print()
        if args.answers == "distinct":
            standin.configure(replies=[])  # echo again: the restore check compares the answer with the prompt
        print(
            f"leak: {args.leak_sample} prompts sent one at a time; inserted values that reached the stand-in verbatim"
        )
        for t in targets:
            res = leak_check(t, standin, leak_sample)
            lk, tot = res["leaked"], res["total"]
            per_kind = "  ".join(f"{k} {lk[k]}/{tot[k]}" for k in KINDS)
            print(
                f"  {t.name:<42} {sum(lk.values()) / max(1, sum(tot.values())):6.1%}   {per_kind}   "
                f"answers restored exactly: {res['restored']}/{res['n']}"
            )
    finally:
        for p in reversed(others):
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
        for g in gateways:
            g.stop()
        standin.stop()
        for rp in redises:
            rp.stop()


if __name__ == "__main__":
    main()
