"""Prefix caching, time to first token and throughput of a real SGLang server, direct and through mixguard.

Runs where SGLang runs (bench/gpu/run.sh starts SGLang and the gateway on a GPU host, then this script);
it needs only the standard library and aiohttp (matplotlib for the plot, if installed). Three parts:

- masking: multi-turn conversations with personal data replayed direct to one SGLang replica (unmasked),
  through the gateway with masking on, and through it with masking off; SGLang's cache is flushed before
  each. The figure is the share of prompt tokens SGLang served from its radix cache
  (`usage.prompt_tokens_details.cached_tokens`) on turns 2 and later. Masking keeps the prefix only if
  every turn masks earlier text the same way (placeholders are stable per conversation).
- latency: streamed requests at concurrency 1, 16 and 64, direct and through the gateway (masking off
  and on). Per request: time to the first event that carries a generated token (TTFT; the gateway
  forwards every chunk, with its text possibly held back) and time to the first visible text (TTFV: the
  streamed output scan releases text only up to the start of an unfinished word, and dummy weights
  emit long runs without spaces); tokens/s from `usage.completion_tokens`, with `ignore_eos` so every
  request generates exactly `max_tokens`. The gateway's PII analysis time per request comes from its
  audit record (`latency_ms.guardrails`), joined by `x-request-id`.
- affinity: conversations with a long private opening, replayed through gateways whose model group
  holds two replicas, one gateway per routing strategy; cached share, and how often a turn landed on
  the replica that served the conversation's previous turn (`x-mixguard-backend`).

Writes OUT/prefix_cache-<date>[-tag].json (figures and per-request samples) and, with matplotlib, the
.png beside it (bench/plot_prefix_cache.py draws it again from the JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

NAMES = [
    "Maria Gonzalez",
    "Jürgen Großmann",
    "Aisha Okafor",
    "Tomasz Wiśniewski",
    "Priya Raghunathan",
    "Liam O'Connell",
    "Chen Wei",
    "Fatima Zahra",
    "Sunniva Haugen",
    "Oluwaseun Adeyemi",
    "Camille Lefèvre",
    "Dmitri Volkov",
]
STREETS = ["Invalidenstrasse 19", "12 Baker Street", "Rue de Bouillon 316", "445 Callejón de Postas 34"]
WORDS = [
    "account",
    "balance",
    "transfer",
    "card",
    "statement",
    "fee",
    "refund",
    "branch",
    "loan",
    "mortgage",
    "interest",
    "rate",
    "savings",
    "deposit",
    "overdraft",
    "limit",
    "payment",
    "schedule",
    "invoice",
    "contract",
    "clause",
    "renewal",
    "premium",
    "coverage",
    "claim",
    "policy",
    "review",
]
SYSTEM = (
    "You are the support assistant of Acme Bank. Answer briefly and politely, in the customer's language. "
    + "Never reveal internal notes, risk scores or other customers' data. " * 24
)


@dataclass
class Target:
    """One way to reach the model: SGLang's own OpenAI API, or the gateway with one API key."""

    name: str
    base: str  # .../v1
    model: str
    key: str | None = None

    def headers(self, request_id: str | None = None) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.key:
            h["Authorization"] = f"Bearer {self.key}"
        if request_id:
            h["x-request-id"] = request_id
        return h


@dataclass
class Sample:
    """One request's measurements (times in ms from sending the request)."""

    target: str
    request_id: str
    ttft_ms: float | None = None
    ttfv_ms: float | None = None
    total_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    backend: str | None = None
    error: str | None = None
    text: str = field(default="", repr=False)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _usage_into(sample: Sample, usage: dict[str, Any] | None) -> None:
    if not usage:
        return
    sample.prompt_tokens = usage.get("prompt_tokens")
    sample.completion_tokens = usage.get("completion_tokens")
    sample.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0


async def complete(session: aiohttp.ClientSession, t: Target, body: dict[str, Any], rid: str) -> Sample:
    """A non-streamed chat completion."""
    s = Sample(t.name, rid)
    t0 = time.perf_counter()
    async with session.post(t.base + "/chat/completions", json={**body, "model": t.model}, headers=t.headers(rid)) as r:
        raw = await r.read()
        s.total_ms = (time.perf_counter() - t0) * 1000
        s.backend = r.headers.get("x-mixguard-backend")
        if r.status != 200:
            s.error = f"{r.status} {raw[:300].decode('utf-8', 'replace')}"
            return s
    data = json.loads(raw)
    _usage_into(s, data.get("usage"))
    s.text = (data.get("choices") or [{}])[0].get("message", {}).get("content") or ""
    return s


async def stream(session: aiohttp.ClientSession, t: Target, body: dict[str, Any], rid: str) -> Sample:
    """A streamed chat completion: TTFT at the first event with a choice, TTFV at the first non-empty text."""
    s = Sample(t.name, rid)
    payload = {**body, "model": t.model, "stream": True, "stream_options": {"include_usage": True}}
    parts: list[str] = []
    t0 = time.perf_counter()
    async with session.post(t.base + "/chat/completions", json=payload, headers=t.headers(rid)) as r:
        s.backend = r.headers.get("x-mixguard-backend")
        if r.status != 200:
            s.error = f"{r.status} {(await r.read())[:300].decode('utf-8', 'replace')}"
            return s
        async for line in r.content:
            if not line.startswith(b"data: "):
                continue
            data = line[6:].strip()
            if data == b"[DONE]":
                break
            ev = json.loads(data)
            if "error" in ev:
                s.error = json.dumps(ev["error"])[:300]
                break
            now = (time.perf_counter() - t0) * 1000
            for choice in ev.get("choices") or []:
                if s.ttft_ms is None:
                    s.ttft_ms = now
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    parts.append(piece)
                    if s.ttfv_ms is None:
                        s.ttfv_ms = now
            _usage_into(s, ev.get("usage"))
    s.total_ms = (time.perf_counter() - t0) * 1000
    s.text = "".join(parts)
    return s


async def flush(session: aiohttp.ClientSession, replicas: list[str]) -> None:
    """Empty SGLang's radix caches, so no part profits from what an earlier one left."""
    for root in replicas:
        for _ in range(20):  # refused while requests are still running
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(root + "/flush_cache") as r:
                    if r.status == 200:
                        break
            await asyncio.sleep(0.5)
        else:
            raise RuntimeError(f"{root}/flush_cache kept failing")


async def warm_up(session: aiohttp.ClientSession, targets: list[Target], seconds: float = 180) -> None:
    """One answered request per target first: a gateway's first PII analysis loads spaCy's model, and its
    first long text starts the worker processes that analyse long texts (each loads the model too)."""
    deadline = time.monotonic() + seconds
    for n, t in enumerate(targets):
        user = opening_document(random.Random(-1 - n), 999, 400)  # longer than long_text_chars, not cached
        body = {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], "max_tokens": 4}
        while True:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                if not (await complete(session, t, body, f"pc-warm0-{t.name}-{int(time.time() * 1000)}")).error:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{t.name} answered no request in {seconds:g}s")
            await asyncio.sleep(2)


async def wait_ready(session: aiohttp.ClientSession, replicas: list[str], seconds: float) -> None:
    """Wait until every replica answers /health (the second one may still be starting)."""
    deadline = time.monotonic() + seconds
    for root in replicas:
        while True:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(root + "/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{root} not ready after {seconds:g}s")
            await asyncio.sleep(1)


async def gateway_ready(session: aiohttp.ClientSession, t: Target, seconds: float) -> bool:
    """Wait for the gateway's /health/ready (every deployment answering), e.g. for a replica that was
    still starting when the gateway first checked it; False if it never came."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with session.get(t.base.removesuffix("/v1") + "/health/ready") as r:
                if r.status == 200:
                    return True
        await asyncio.sleep(1)
    return False


async def sglang_metrics(session: aiohttp.ClientSession, root: str) -> dict[str, float]:
    """SGLang's cache figures from its Prometheus page (needs --enable-metrics)."""
    out: dict[str, float] = {}
    with contextlib.suppress(aiohttp.ClientError):
        async with session.get(root + "/metrics") as r:
            for line in (await r.text()).splitlines():
                if line.startswith(
                    ("sglang:cache_hit_rate", "sglang:cached_tokens_total", "sglang:prompt_tokens_total")
                ):
                    name, _, value = line.rpartition(" ")
                    key = name.split("{")[0].removeprefix("sglang:")
                    if "cache_source" in name and 'cache_source="device"' not in name:
                        continue
                    out[key] = out.get(key, 0.0) + float(value)
    return out


# --- conversations -------------------------------------------------------------------------------------
def user_turn(rnd: random.Random, conv: int, turn: int, words: int = 40) -> str:
    name = NAMES[(conv + turn) % len(NAMES)]
    first = name.split()[0].lower().replace("ü", "u").replace("'", "")
    return (
        f"Turn {turn}: my name is {name}, mail {first}.{conv}{turn}@example.com, call +1 415 555 0{conv:02d}{turn}, "
        f"I live at {STREETS[(conv + turn) % len(STREETS)]}. " + " ".join(rnd.choice(WORDS) for _ in range(words))
    )


def opening_document(rnd: random.Random, conv: int, words: int) -> str:
    """A long text private to one conversation (a contract pasted into the chat), so that its prefix is
    cached only on the replica that served the conversation before."""
    return f"Here is my contract number {1000 + conv}, signed by {NAMES[conv % len(NAMES)]}:\n" + " ".join(
        rnd.choice(WORDS) for _ in range(words)
    )


async def conversation(
    session: aiohttp.ClientSession,
    t: Target,
    conv: int,
    turns: int,
    max_tokens: int,
    tag: str,
    document_words: int = 0,
) -> list[Sample]:
    """One conversation, turn after turn; each answer (as the client saw it) goes into the next prompt."""
    rnd = random.Random(conv)
    messages: list[dict[str, str]] = [{"role": "system", "content": SYSTEM}]
    out: list[Sample] = []
    for turn in range(turns):
        text = user_turn(rnd, conv, turn)
        if turn == 0 and document_words:
            text = opening_document(rnd, conv, document_words) + "\n\n" + text
        messages.append({"role": "user", "content": text})
        body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0}
        s = await complete(session, t, body, f"pc-{tag}-{t.name}-c{conv:03d}-t{turn}")
        out.append(s)
        if s.error:
            break
        messages.append({"role": "assistant", "content": s.text})
    return out


def cache_summary(samples: list[Sample]) -> dict[str, Any]:
    later = [s for s in samples if not s.error and not s.request_id.endswith("-t0")]
    cached = sum(s.cached_tokens or 0 for s in later)
    prompt = sum(s.prompt_tokens or 0 for s in later)
    return {
        "requests": len(samples),
        "errors": sum(1 for s in samples if s.error),
        "later_turns": len(later),
        "prompt_tokens_later_turns": prompt,
        "cached_tokens_later_turns": cached,
        "cached_share_later_turns": round(cached / prompt, 4) if prompt else None,
    }


async def part_masking(
    session: aiohttp.ClientSession, targets: list[Target], replicas: list[str], a: argparse.Namespace
) -> dict[str, Any]:
    out: dict[str, Any] = {"conversations": a.conversations, "turns": a.turns, "max_tokens": a.conv_max_tokens}
    for t in targets:
        await flush(session, replicas)
        runs = await asyncio.gather(
            *[conversation(session, t, c, a.turns, a.conv_max_tokens, "mask") for c in range(a.conversations)]
        )
        samples = [s for run in runs for s in run]
        out[t.name] = cache_summary(samples)
        out[t.name]["errors_first"] = next((s.error for s in samples if s.error), None)
        print(f"masking  {t.name:10s} {json.dumps(out[t.name])}", flush=True)
    base = out.get("direct", {}).get("cached_share_later_turns")
    masked = out.get("gw_pii", {}).get("cached_share_later_turns")
    out["masked_over_unmasked"] = round(masked / base, 4) if base and masked is not None else None
    return out


# --- latency and throughput ----------------------------------------------------------------------------
def latency_body(i: int, max_tokens: int) -> dict[str, Any]:
    name = NAMES[i % len(NAMES)]
    user = f"Question {i}: I am {name}, card ending {1000 + i}. Why was fee {i} charged on my statement?"
    return {
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "temperature": 0.7,
    }


def _proc_stats() -> dict[int, list[str]]:
    """pid -> the fields of /proc/PID/stat after the command name (state, ppid, ...)."""
    out: dict[int, list[str]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                out[int(d.name)] = (d / "stat").read_text().rsplit(")", 1)[1].split()
    return out


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU time of processes and all their descendants (the gateway's analysis worker
    processes, its embedded Valkey), from /proc; None where /proc has none of them."""
    stats = _proc_stats()
    if not any(p in stats for p in pids):
        return None
    tree, frontier = set(pids), list(pids)
    while frontier:
        parent = frontier.pop()
        for pid, f in stats.items():
            if int(f[1]) == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    ticks = sum(sum(int(x) for x in stats[p][11:15]) for p in tree if p in stats)  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


async def run_level(
    session: aiohttp.ClientSession, t: Target, conc: int, n: int, max_tokens: int, start: int, tag: str = "lat"
) -> tuple[list[Sample], float]:
    sem = asyncio.Semaphore(conc)

    async def one(i: int) -> Sample:
        async with sem:
            return await stream(session, t, latency_body(i, max_tokens), f"pc-{tag}-c{conc}-{t.name}-{i:05d}")

    t0 = time.perf_counter()
    samples = await asyncio.gather(*[one(start + i) for i in range(n)])
    return list(samples), time.perf_counter() - t0


def level_summary(samples: list[Sample], wall_s: float, max_tokens: int) -> dict[str, Any]:
    ok = [s for s in samples if not s.error]
    tokens = sum(s.completion_tokens or 0 for s in ok)
    ttft = [s.ttft_ms for s in ok if s.ttft_ms is not None]
    ttfv = [s.ttfv_ms for s in ok if s.ttfv_ms is not None]
    r = lambda v: None if v is None else round(v, 2)  # noqa: E731
    return {
        "requests": len(samples),
        "errors": len(samples) - len(ok),
        "errors_first": next((s.error for s in samples if s.error), None),
        "completion_tokens": tokens,
        "all_generated_max_tokens": all(s.completion_tokens == max_tokens for s in ok),
        "wall_s": round(wall_s, 3),
        "tokens_per_s": round(tokens / wall_s, 1) if wall_s else None,
        "ttft_ms_p50": r(pct(ttft, 50)),
        "ttft_ms_p90": r(pct(ttft, 90)),
        "ttfv_ms_p50": r(pct(ttfv, 50)),
        "ttfv_ms_p90": r(pct(ttfv, 90)),
    }


async def one_level(
    session: aiohttp.ClientSession, targets: list[Target], conc: int, a: argparse.Namespace
) -> tuple[dict[str, Any], list[Sample]]:
    """Every target at one concurrency: its summary, and the samples."""
    per: dict[str, list[Sample]] = {t.name: [] for t in targets}
    walls: dict[str, float] = {t.name: 0.0 for t in targets}
    cpu: dict[str, float] = {t.name: 0.0 for t in targets}

    async def timed(t: Target, n: int, start: int) -> None:
        c0 = cpu_seconds(a.gateway_pid) if t.key else None
        samples, wall = await run_level(session, t, conc, n, a.max_tokens, start)
        c1 = cpu_seconds(a.gateway_pid) if t.key else None
        per[t.name] += samples
        walls[t.name] += wall
        if c0 is not None and c1 is not None:
            cpu[t.name] += c1 - c0

    if conc == 1:  # one request per target in turn, so that machine noise lands on all alike
        for i in range(a.n1):
            for t in targets:
                await timed(t, 1, i)
    else:
        for t in targets:  # untimed: SGLang's triton kernels compile once for each new batch shape
            await run_level(session, t, conc, conc, a.max_tokens, 50_000, tag="warm")
        for rnd in range(a.rounds):
            for t in targets if rnd % 2 == 0 else list(reversed(targets)):
                await timed(t, conc * a.per_slot, rnd * 10_000)
    level = {name: level_summary(per[name], walls[name], a.max_tokens) for name in per}
    for t in targets:
        if t.key and a.gateway_pid and walls[t.name]:
            level[t.name]["gateway_cpu_cores"] = round(cpu[t.name] / walls[t.name], 2)
    return level, [s for v in per.values() for s in v]


async def part_latency(
    session: aiohttp.ClientSession, targets: list[Target], a: argparse.Namespace
) -> tuple[dict[str, Any], list[Sample]]:
    out: dict[str, Any] = {"max_tokens": a.max_tokens, "levels": {}}
    every: list[Sample] = []
    for t in targets:  # warm-up: connections, the gateway's first analysis, SGLang's cached system prompt
        for i in range(4):
            await stream(session, t, latency_body(90_000 + i, 8), f"pc-warm-{t.name}-{i:05d}")
    for conc in a.concurrency:
        level, samples = await one_level(session, targets, conc, a)
        out["levels"][str(conc)] = level
        for name, v in level.items():
            print(f"latency  c={conc:<3d} {name:10s} {json.dumps(v)}", flush=True)
        every += samples
    return out, every


SAMPLE_FIELDS = [
    "target",
    "request_id",
    "ttft_ms",
    "ttfv_ms",
    "total_ms",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "backend",
    "error",
]


def sample_table(samples: list[Sample], guard: dict[str, float]) -> dict[str, Any]:
    """Per-request figures as rows under one header (a tenth of the size of one object per request)."""
    r = lambda v: round(v, 2) if isinstance(v, float) else v  # noqa: E731
    return {
        "fields": [*SAMPLE_FIELDS, "guard_ms"],
        "rows": [[r(getattr(s, f)) for f in SAMPLE_FIELDS] + [r(guard.get(s.request_id))] for s in samples],
    }


def write_result(path: Path, result: dict[str, Any]) -> None:
    """The result as indented JSON, its per-request samples one line each."""
    text = json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1, ensure_ascii=False)
    if "samples" in result:
        rows = ",\n".join("  " + json.dumps(row, ensure_ascii=False) for row in result["samples"]["rows"])
        head = json.dumps(result["samples"]["fields"])
        text = text[: text.rindex("}")].rstrip() + f',\n "samples": {{"fields": {head}, "rows": [\n{rows}\n ]}}\n}}\n'
    path.write_text(text)


def audit_guard_ms(config: str, since: str, env: dict[str, str]) -> dict[str, float]:
    """request id -> the gateway's guardrail time (ms), from its audit export."""
    time.sleep(2)  # the audit writer batches records in the background
    cmd = [sys.executable, "-m", "proxy.cli", "audit", "export", "--config", config, "--since", since, "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0:
        print(f"audit export failed: {proc.stderr[-500:]}", flush=True)
        return {}
    out: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            g = (rec.get("latency_ms") or {}).get("guardrails")
            if rec.get("id") and g is not None:
                out[rec["id"]] = float(g)
    return out


def latency_goals(lat: dict[str, Any], guard: dict[str, float], samples: list[Sample]) -> dict[str, Any]:
    """The issue's goals, per concurrency level: TTFT p50 within +3 ms of direct (masking off), within
    +3 ms plus the analysis time (masking on), throughput >= 97% of direct."""
    goals: dict[str, Any] = {}
    for conc, level in lat["levels"].items():
        d, off, on = level.get("direct"), level.get("gw_nopii"), level.get("gw_pii")
        if not (d and off and on):
            continue
        g_ms = [guard[s.request_id] for s in samples if s.request_id in guard and f"-c{conc}-gw_pii-" in s.request_id]
        g50 = pct(g_ms, 50)
        row: dict[str, Any] = {"analysis_ms_p50": None if g50 is None else round(g50, 2)}
        if d["ttft_ms_p50"] is not None and off["ttft_ms_p50"] is not None and on["ttft_ms_p50"] is not None:
            row["ttft_added_ms_nopii"] = round(off["ttft_ms_p50"] - d["ttft_ms_p50"], 2)
            row["ttft_added_ms_pii"] = round(on["ttft_ms_p50"] - d["ttft_ms_p50"], 2)
            row["ttft_goal_nopii_met"] = row["ttft_added_ms_nopii"] <= 3.0
            if g50 is not None:
                row["ttft_goal_pii_met"] = row["ttft_added_ms_pii"] <= 3.0 + g50
        if d["ttfv_ms_p50"] is not None and on["ttfv_ms_p50"] is not None:
            row["ttfv_added_ms_pii"] = round(on["ttfv_ms_p50"] - d["ttfv_ms_p50"], 2)
        if d["tokens_per_s"]:
            row["throughput_ratio_nopii"] = round(off["tokens_per_s"] / d["tokens_per_s"], 4)
            row["throughput_ratio_pii"] = round(on["tokens_per_s"] / d["tokens_per_s"], 4)
            row["throughput_goal_met"] = min(row["throughput_ratio_nopii"], row["throughput_ratio_pii"]) >= 0.97
        goals[conc] = row
    return goals


# --- affinity ------------------------------------------------------------------------------------------
async def part_affinity(
    session: aiohttp.ClientSession, targets: list[Target], replicas: list[str], a: argparse.Namespace
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "conversations": a.affinity_conversations,
        "turns": a.turns,
        "document_words": a.document_words,
        "replicas": replicas,
    }
    for t in targets:
        out.setdefault("gateway_ready", {})[t.name] = await gateway_ready(session, t, 120)
        await flush(session, replicas)
        before = {r: await sglang_metrics(session, r) for r in replicas}
        runs = await asyncio.gather(
            *[
                conversation(session, t, c, a.turns, a.conv_max_tokens, "aff", a.document_words)
                for c in range(a.affinity_conversations)
            ]
        )
        after = {r: await sglang_metrics(session, r) for r in replicas}
        samples = [s for run in runs for s in run]
        summary = cache_summary(samples)
        same = moved = 0
        for run in runs:
            for prev, cur in itertools.pairwise(run):
                if cur.error or prev.error:
                    continue
                same += prev.backend == cur.backend
                moved += prev.backend != cur.backend
        backends: dict[str, int] = {}
        for s in samples:
            backends[s.backend or "none"] = backends.get(s.backend or "none", 0) + 1
        summary.update(
            {
                "errors_first": next((s.error for s in samples if s.error), None),
                "same_replica_as_previous_turn": round(same / (same + moved), 4) if same + moved else None,
                "requests_per_backend": backends,
                "sglang": {
                    r: {
                        "cached_tokens": after[r].get("cached_tokens_total", 0)
                        - before[r].get("cached_tokens_total", 0),
                        "prompt_tokens": after[r].get("prompt_tokens_total", 0)
                        - before[r].get("prompt_tokens_total", 0),
                        "cache_hit_rate_gauge": after[r].get("cache_hit_rate"),
                    }
                    for r in replicas
                },
            }
        )
        out[t.name] = summary
        print(f"affinity {t.name:10s} {json.dumps(summary)}", flush=True)
    return out


# --- main ----------------------------------------------------------------------------------------------
def host_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "python": platform.python_version()}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        q = "--query-gpu=name,memory.total,driver_version"
        info["gpu"] = subprocess.run(
            ["nvidia-smi", q, "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    return info


def table(result: dict[str, Any]) -> str:
    lines: list[str] = []
    if m := result.get("masking"):
        lines.append("cached share of the prompt, turns 2+ (masking part)")
        for name in ("direct", "gw_nopii", "gw_pii"):
            if name in m:
                lines.append(f"  {name:10s} {m[name]['cached_share_later_turns']}  errors={m[name]['errors']}")
        lines.append(f"  masked / unmasked = {m.get('masked_over_unmasked')}  (goal >= 0.95)")
    if lat := result.get("latency"):
        lines.append(f"streamed, max_tokens={lat['max_tokens']} (ignore_eos): TTFT / TTFV p50 ms, tokens/s")
        lines.append(
            f"  {'conc':>4s} {'target':10s} {'ttft50':>8s} {'ttft90':>8s} {'ttfv50':>8s} {'tok/s':>9s} {'err':>4s}"
        )
        for conc, level in lat["levels"].items():
            for name, v in level.items():
                lines.append(
                    f"  {conc:>4s} {name:10s} {v['ttft_ms_p50']!s:>8s} {v['ttft_ms_p90']!s:>8s} "
                    f"{v['ttfv_ms_p50']!s:>8s} {v['tokens_per_s']!s:>9s} {v['errors']:>4d}"
                )
        for conc, g in (result.get("goals") or {}).items():
            lines.append(f"  goals c={conc}: {json.dumps(g)}")
    if aff := result.get("affinity"):
        lines.append("two replicas, one model group: cached share turns 2+, same replica as previous turn")
        for name, v in aff.items():
            if isinstance(v, dict) and "cached_share_later_turns" in v:
                lines.append(
                    f"  {name:10s} {v['cached_share_later_turns']}  same={v['same_replica_as_previous_turn']}  "
                    f"per backend={v['requests_per_backend']}  errors={v['errors']}"
                )
    return "\n".join(lines)


def parse_target(spec: str) -> Target:
    """name=BASE_URL,model[,key]"""
    name, rest = spec.split("=", 1)
    parts = rest.split(",")
    return Target(name, parts[0].rstrip("/"), parts[1], parts[2] if len(parts) > 2 else None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--direct", required=True, help="SGLang replica A: name=URL/v1,model (e.g. direct=http://h:30000/v1,mixtral)"
    )
    p.add_argument(
        "--gateway", action="append", default=[], help="gw_nopii=URL/v1,group,key and gw_pii=... (replica A only)"
    )
    p.add_argument(
        "--affinity", action="append", default=[], help="strategy=URL/v1,group,key: a group of both replicas"
    )
    p.add_argument("--replica", action="append", default=[], help="SGLang root URLs (flush_cache, metrics)")
    p.add_argument("--wait-replicas", type=float, default=0, help="seconds to wait for every replica before timing")
    p.add_argument("--parts", default="masking,latency,affinity")
    p.add_argument("--conversations", type=int, default=8)
    p.add_argument("--affinity-conversations", type=int, default=16)
    p.add_argument("--turns", type=int, default=6)
    p.add_argument("--document-words", type=int, default=900)
    p.add_argument("--conv-max-tokens", type=int, default=24)
    p.add_argument("--concurrency", type=lambda v: [int(x) for x in v.split(",")], default=[1, 16, 64])
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--n1", type=int, default=30, help="requests per target at concurrency 1")
    p.add_argument("--rounds", type=int, default=2, help="rounds per target at higher concurrency")
    p.add_argument("--per-slot", type=int, default=3, help="requests per concurrency slot and round")
    p.add_argument(
        "--gateway-pid",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[],
        help="process ids of the gateway (and its analysis processes): CPU cores it used per level",
    )
    p.add_argument("--audit-config", help="gateway config: read guardrail times from its audit export")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--tag", default="")
    p.add_argument("--note", default="", help="free text stored in the JSON (setup, versions)")
    a = p.parse_args()
    parts = set(a.parts.split(","))
    direct = parse_target(a.direct)
    gateways = [parse_target(g) for g in a.gateway]
    replicas = [r.rstrip("/") for r in a.replica] or [direct.base.removesuffix("/v1")]
    started = dt.datetime.now(dt.timezone.utc)
    result: dict[str, Any] = {
        "bench": "prefix_cache",
        "started": started.isoformat(timespec="seconds"),
        "host": host_info(),
        "note": a.note,
        "args": {k: v for k, v in vars(a).items() if k not in ("gateway", "affinity")},
        "targets": [asdict(t) | {"key": bool(t.key)} for t in [direct, *gateways]],
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"prefix_cache-{started:%Y-%m-%d}" + (f"-{a.tag}" if a.tag else "")
    path = out / f"{stem}.json"

    def save() -> None:  # after every part, so a run cut short keeps what it measured
        write_result(path, result)

    @contextlib.asynccontextmanager
    async def part(name: str) -> AsyncIterator[None]:
        """A part that fails is recorded as failed; the parts after it still run."""
        try:
            yield
        except Exception as exc:  # a bench run on borrowed GPU time keeps what the other parts measure
            result.setdefault("failed_parts", {})[name] = f"{type(exc).__name__}: {exc}"[:500]
            print(f"part {name} failed: {exc!r}", flush=True)
        save()

    async def run() -> None:
        timeout = aiohttp.ClientTimeout(total=600)
        conn = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(timeout=timeout, connector=conn) as session:
            await warm_up(session, [direct, *gateways])
            if "masking" in parts:
                async with part("masking"):
                    result["masking"] = await part_masking(session, [direct, *gateways], replicas[:1], a)
            if a.wait_replicas:
                await wait_ready(session, replicas, a.wait_replicas)
            if "latency" in parts:
                async with part("latency"):
                    await flush(session, replicas[:1])
                    result["latency"], samples = await part_latency(session, [direct, *gateways], a)
                    guard = audit_guard_ms(a.audit_config, "2h", dict(os.environ)) if a.audit_config else {}
                    result["goals"] = latency_goals(result["latency"], guard, samples)
                    result["samples"] = sample_table(samples, guard)
            if "affinity" in parts and a.affinity:
                async with part("affinity"):
                    targets = [parse_target(x) for x in a.affinity]
                    await warm_up(session, targets)
                    result["affinity"] = await part_affinity(session, targets, replicas, a)

    asyncio.run(run())
    result["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    save()
    print(table(result), flush=True)
    print(f"wrote {path}", flush=True)
    try:
        from plot_prefix_cache import plot
    except ImportError as exc:  # matplotlib missing: draw it elsewhere with bench/plot_prefix_cache.py
        print(f"no plot ({exc}); run: python bench/plot_prefix_cache.py {path}", flush=True)
        return
    plot([result], path.with_suffix(".png"))
    print(f"wrote {path.with_suffix('.png')}", flush=True)


if __name__ == "__main__":
    main()
