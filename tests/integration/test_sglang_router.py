"""sglang-router (the SGLang Model Gateway, PyPI `sglang-router`) in front of two SGLang stand-ins, and
the gateway in front of it: the router's health check accepts the stand-ins, its cache-aware policy
keeps each conversation on one worker, and its `manual` policy pins the conversation key the gateway
sends (`x-smg-routing-key`), so conversations stick even when their text would not tell them apart."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from procs import Gateway, Standin, free_port, gateway_config, wait_http


class SGLangRouter:
    """`python -m sglang_router.launch_router` on a free loopback port, in front of `workers`."""

    def __init__(self, workers: list[Standin], policy: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="mg-router-", suffix=".log", delete=False)  # noqa: SIM115
        flags = {
            "--host": "127.0.0.1",
            "--port": str(self.port),
            "--policy": policy,
            "--prometheus-host": "127.0.0.1",
            "--prometheus-port": str(free_port()),
            "--health-check-interval-secs": "1",
            "--shutdown-grace-period-secs": "1",
            "--log-level": "warn",
            "--log-dir": tempfile.mkdtemp(prefix="mg-router-logs-"),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sglang_router.launch_router",
                *(x for kv in flags.items() for x in kv),
                "--worker-urls",
                *(w.url for w in workers),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_http(self.url + "/health", self.proc, timeout=60)

    def workers(self) -> list[dict]:
        return httpx.get(self.url + "/workers", timeout=5).json()["workers"]

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def stack(redis_server) -> Iterator[tuple[Gateway, list[Standin], dict[str, SGLangRouter]]]:
    workers = [Standin(), Standin()]
    routers: dict[str, SGLangRouter] = {}
    gw = None
    try:
        routers = {p: SGLangRouter(workers, p) for p in ("cache_aware", "manual")}
        cfg = gateway_config({"model": "openai/mixtral"}, redis_url=redis_server.url, extra={"pii": {"enabled": False}})
        cfg["model_list"] = [
            {
                "model_name": name,
                "litellm_params": {"model": "openai/mixtral", "api_base": f"{routers[p].url}/v1"},
                "model_info": {"id": f"router-{p}"},
            }
            for name, p in (("mixtral", "cache_aware"), ("mixtral-manual", "manual"))
        ]
        cfg["router_settings"]["health_check_interval"] = 1
        gw = Gateway(cfg)
        yield gw, workers, routers
    finally:
        if gw is not None:
            gw.stop()
        for r in routers.values():
            r.stop()
        for w in workers:
            w.stop()


def served_by(workers: list[Standin]) -> list[float]:
    return [w.metric("sglang:num_requests_total") for w in workers]


def which(workers: list[Standin], before: list[float]) -> int:
    after = served_by(workers)
    moved = [i for i, (a, b) in enumerate(zip(after, before)) if a > b]
    assert len(moved) == 1, (before, after)
    return moved[0]


def test_the_routers_health_check_accepts_the_standins(stack):
    gw, workers, routers = stack
    for router in routers.values():
        listed = router.workers()
        assert sorted(w["url"] for w in listed) == sorted(w.url for w in workers)
        assert all(w["is_healthy"] for w in listed), router.output()[-2000:]
    ready = httpx.get(gw.url + "/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text  # the router's /health_generate answers for its workers
    assert ready.json()["checks"]["backends"]["router-cache_aware"]["reason"] == "GET /health_generate -> 200"


def test_cache_aware_routing_keeps_each_conversation_on_one_worker(stack):
    """Six conversations at once (the router places a new one on its least loaded worker, so they
    spread), three turns each: every later turn finds its earlier turns cached, which it can only
    on the worker that served them."""
    gw, workers, _ = stack
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=Gateway.KEY, max_retries=0, timeout=30)
    for w in workers:
        w.configure(ttft_ms=300.0)  # the conversations' requests overlap
    before = served_by(workers)
    cached: dict[int, list[int]] = {}

    def converse(c: int) -> None:
        messages = [{"role": "user", "content": f"Ticket {c}: {'the VPN drops every few minutes. ' * (c + 2)}"}]
        for turn in range(3):
            answer = client.chat.completions.create(model="mixtral", messages=messages)
            details = answer.usage.prompt_tokens_details if answer.usage else None
            cached.setdefault(c, []).append((details.cached_tokens or 0) if details else 0)
            messages += [
                {"role": "assistant", "content": answer.choices[0].message.content or ""},
                {"role": "user", "content": f"It dropped again ({turn})."},
            ]

    try:
        threads = [threading.Thread(target=converse, args=(c,)) for c in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for w in workers:
            w.configure(ttft_ms=0.0)
    assert all(len(v) == 3 and v[1] > 0 and v[2] > v[1] for v in cached.values()), cached
    per_worker = [after - b for after, b in zip(served_by(workers), before)]
    assert sum(per_worker) == 18 and min(per_worker) >= 3, per_worker  # both workers hold conversations


def test_the_gateway_passes_its_conversation_key_to_the_router(stack):
    """The manual policy routes on x-smg-routing-key alone: turns with unrelated text share a worker
    exactly when they share the gateway's conversation key."""
    gw, workers, _ = stack
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=Gateway.KEY, max_retries=0, timeout=30)
    homes = []
    for c in range(12):
        seen = set()
        for turn in range(3):
            before = served_by(workers)
            client.chat.completions.create(
                model="mixtral-manual",
                messages=[{"role": "user", "content": f"unrelated text {c}-{turn}"}],
                extra_headers={"x-conversation-id": f"conversation-{c}"},
            )
            seen.add(which(workers, before))
        assert len(seen) == 1
        homes.append(seen.pop())
    assert set(homes) == {0, 1}, homes  # keys are spread (all twelve on one worker: P = 2**-11)
