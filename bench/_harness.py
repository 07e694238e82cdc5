"""Shared helpers for bench scripts: start processes, drive load with aiohttp, summarise latencies."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from procs import Gateway, RedisProc, Standin, free_port, gateway_config, wait_http  # noqa: E402,F401


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def sequential_latency(
    url: str, headers: dict[str, str], body: dict[str, Any], n: int, warmup: int = 50
) -> list[float]:
    """Per-request wall time (ms) of n sequential keep-alive requests."""
    payload = orjson.dumps(body)
    out: list[float] = []
    async with aiohttp.ClientSession(headers={"Content-Type": "application/json", **headers}) as s:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            async with s.post(url, data=payload) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{url} -> {r.status}")
            if i >= warmup:
                out.append((time.perf_counter() - t0) * 1000)
    return out


async def interleaved_latency(
    targets: dict[str, tuple[str, dict[str, str]]], body: dict[str, Any], n: int, warmup: int = 50
) -> dict[str, list[float]]:
    """Per-request wall time (ms) per target, requests alternating between targets so that
    machine noise lands on all of them alike."""
    payload = orjson.dumps(body)
    out: dict[str, list[float]] = {name: [] for name in targets}
    sessions = {
        name: aiohttp.ClientSession(headers={"Content-Type": "application/json", **hdr})
        for name, (_, hdr) in targets.items()
    }
    try:
        for i in range(warmup + n):
            for name, (url, _) in targets.items():
                t0 = time.perf_counter()
                async with sessions[name].post(url, data=payload) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{url} -> {r.status}")
                if i >= warmup:
                    out[name].append((time.perf_counter() - t0) * 1000)
    finally:
        for s in sessions.values():
            await s.close()
    return out


async def throughput(
    url: str, headers: dict[str, str], body: dict[str, Any], concurrency: int, seconds: float
) -> float:
    """Requests per second with `concurrency` workers for `seconds` (after a short warm-up)."""
    payload = orjson.dumps(body)
    done = 0
    stop_at = 0.0

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            async with s.post(url, data=payload) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{url} -> {r.status}")
            done += 1

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers={"Content-Type": "application/json", **headers}) as s:
        stop_at = time.perf_counter() + 1.0
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        done = 0
        t0 = time.perf_counter()
        stop_at = t0 + seconds
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        return done / (time.perf_counter() - t0)


def summary(name: str, lat: list[float]) -> str:
    return f"{name:<28} p50 {pct(lat, 50):7.2f} ms   p99 {pct(lat, 99):7.2f} ms   mean {statistics.mean(lat):7.2f} ms"


def machine() -> str:
    return f"{os.cpu_count()} CPUs ({cpu_kind()}), Python {sys.version.split()[0]}"


def cpu_kind() -> str:
    """The CPU's model and its widest int8 matrix instructions: the classifier's cost per token
    differs about 2.5x between an AVX2-only CPU and one with AVX512-VNNI or AMX (docs/benchmarks.md)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    best = next((f for f in ("amx_int8", "avx512_vnni", "avx_vnni", "avx2") if f in flags), "no AVX2")
    return f"{model}, {best}"


def start_litellm_proxy(
    standin: Standin, config: dict[str, Any] | None = None, env: dict[str, str] | None = None
) -> tuple[Any, str]:
    """LiteLLM's proxy (one worker, no database) in front of the stand-in as model `mixtral`, with
    `config` merged into its config file and `env` into its environment; its output goes to a log file."""
    import shutil
    import subprocess
    import tempfile

    import yaml

    exe = shutil.which("litellm", path=str(Path(sys.executable).parent))
    if exe is None:
        raise SystemExit("LiteLLM's proxy is not installed: pip install -c constraints.txt -e '.[bench]'")
    cfg = Path(tempfile.mkdtemp()) / "litellm.yaml"
    model = {"model": "openai/mixtral", "api_base": f"{standin.url}/v1", "api_key": "none"}
    cfg.write_text(
        yaml.safe_dump(
            {
                "model_list": [{"model_name": "mixtral", "litellm_params": model}],
                "general_settings": {"master_key": "sk-bench"},
                "litellm_settings": {"telemetry": False},
                **(config or {}),
            }
        )
    )
    port = free_port()
    full_env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "DISABLE_SCHEMA_UPDATE": "true",
        **(env or {}),
    }
    log = tempfile.NamedTemporaryFile(prefix="litellm-", suffix=".log", delete=False)  # noqa: SIM115
    p = subprocess.Popen(
        [exe, "--config", str(cfg), "--port", str(port), "--num_workers", "1"], stdout=log, stderr=log, env=full_env
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health/liveliness", p, timeout=180)
    return p, url
