"""Balancing inside a model group of two SGLang stand-ins, through the gateway and the official client:
prefix affinity (a conversation stays where its prefix is cached), queue depth read from SGLang's
/metrics, cooldowns and /health_generate checks around a hung replica, and the strategy switch."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from procs import Gateway, Standin, gateway_config

ROUTER = {
    "routing_strategy": "prefix-affinity",
    "timeout": 1.5,
    "allowed_fails": 1,
    "cooldown_time": 2,
    "health_check_interval": 0.5,
    "health_check_timeout": 1,
}


def pair_config(a: Standin, b: Standin, redis_url: str, router: dict[str, Any], **extra: Any) -> dict[str, Any]:
    cfg = gateway_config({"model": "openai/mixtral"}, redis_url=redis_url, router=router, extra=extra or None)
    cfg["model_list"] = [
        {
            "model_name": "mixtral",
            "litellm_params": {"model": "openai/mixtral", "api_base": f"{s.url}/v1"},
            "model_info": {"id": n},
        }
        for n, s in (("a", a), ("b", b))
    ]
    return cfg


@pytest.fixture(scope="module")
def pair():
    a, b = Standin(), Standin()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def gw(pair, redis_server):
    g = Gateway(pair_config(*pair, redis_server.url, ROUTER))
    yield g
    g.stop()


@pytest.fixture
def client(gw):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=Gateway.KEY, max_retries=0, timeout=30)


def ask(client: openai.OpenAI, messages: list[dict[str, str]], conversation: str | None = None):
    headers = {"x-conversation-id": conversation} if conversation else None
    return client.chat.completions.with_raw_response.create(model="mixtral", messages=messages, extra_headers=headers)


def backend_of(client: openai.OpenAI, conversation: str) -> str:
    return ask(client, [{"role": "user", "content": "which replica?"}], conversation).headers["x-mixguard-backend"]


def reset(*standins: Standin) -> None:
    for s in standins:
        s.configure(hang=False, error_rate=0.0, ttft_ms=0.0, max_running_requests=None)


def wait_for(predicate, seconds: float = 15.0) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_turns_of_one_conversation_land_on_one_replica_and_reuse_its_prefix_cache(pair, client):
    reset(*pair)
    homes: dict[int, set[str]] = {}
    for c in range(12):
        messages = [{"role": "user", "content": f"I am Maria Gonzalez, case {c}: the printer on floor {c} jams."}]
        for turn in range(3):
            raw = ask(client, messages)
            homes.setdefault(c, set()).add(raw.headers["x-mixguard-backend"])
            answer = raw.parse()
            cached = (
                (answer.usage.prompt_tokens_details.cached_tokens or 0) if answer.usage.prompt_tokens_details else 0
            )
            if turn:
                assert cached > 0, f"conversation {c} turn {turn} found no cached prefix"
            messages += [
                {"role": "assistant", "content": answer.choices[0].message.content},
                {"role": "user", "content": f"Still jammed after try {turn}."},
            ]
    assert all(len(h) == 1 for h in homes.values()), homes
    assert {next(iter(h)) for h in homes.values()} == {"a", "b"}  # new conversations spread over both


def test_x_conversation_id_keeps_a_conversation_home_whatever_its_text(pair, client):
    reset(*pair)
    for c in range(6):
        served = {
            ask(client, [{"role": "user", "content": f"unrelated text {c}.{t}"}], f"ticket-{c}").headers[
                "x-mixguard-backend"
            ]
            for t in range(4)
        }
        assert len(served) == 1


def test_queue_depth_from_sglang_metrics_sends_new_work_elsewhere_until_it_drains(pair, gw, client):
    a, _ = pair
    reset(*pair)
    on_a = [c for c in (f"q{i}" for i in range(40)) if backend_of(client, c) == "a"][:4]
    assert on_a
    a.configure(max_running_requests=1, ttft_ms=3000.0)  # one request runs, the rest queue, as in SGLang

    def direct() -> None:  # another client of replica a, not through this gateway
        httpx.post(a.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}, timeout=60)

    threads = [threading.Thread(target=direct) for _ in range(5)]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: gw.metric("mixguard_sglang_queued_requests", backend="a") >= 3, 10)
        a.configure(ttft_ms=0.0)  # the gateway's own requests to a would not wait behind them anyway
        assert [backend_of(client, c) for c in on_a] == ["b"] * len(on_a)
        assert gw.metric("mixguard_balancer_picks_total", backend="b", how="overflow") >= len(on_a)
    finally:
        for t in threads:
            t.join()
        reset(a)
    assert wait_for(lambda: gw.metric("mixguard_sglang_queued_requests", backend="a") == 0, 10)
    assert [backend_of(client, c) for c in on_a] == ["a"] * len(on_a)  # back home once the queue drained


def test_sglang_signals_and_deployment_state_are_on_the_gateways_metrics(gw):
    assert wait_for(lambda: gw.metric("mixguard_sglang_prompt_tokens_total", backend="a") > 0, 5)
    text = httpx.get(gw.url + "/metrics", timeout=5).text
    for family in (
        "mixguard_sglang_running_requests",
        "mixguard_sglang_queued_requests",
        "mixguard_sglang_cache_hit_rate",
        "mixguard_sglang_token_usage",
        "mixguard_sglang_cached_tokens_total",
    ):
        assert f'{family}{{backend="a",model="mixtral"}}' in text
    assert (
        gw.metric("mixguard_deployment_up", backend="a") == 1 and gw.metric("mixguard_deployment_up", backend="b") == 1
    )
    assert gw.metric("mixguard_balancer_picks_total", how="affinity") > 0


def test_a_hung_replica_is_left_out_and_answers_stay_fast_until_it_recovers(pair, gw, client):
    a, _ = pair
    reset(*pair)
    on_a = next(c for c in (f"h{i}" for i in range(40)) if backend_of(client, c) == "a")
    a.configure(hang=True)
    took, served = [], []
    try:
        for i in range(20):
            t = time.perf_counter()
            raw = ask(client, [{"role": "user", "content": f"new conversation {i} while a hangs"}])
            took.append(time.perf_counter() - t)
            served.append(raw.headers["x-mixguard-backend"])
        assert served.count("a") == 0
        assert sum(t >= 1.5 for t in took) <= 2  # allowed_fails + 1 timeouts at most, then a is out
        assert statistics.median(took) < 0.5, took
        assert backend_of(client, on_a) == "b"  # its conversations are served by the ring successor meanwhile
        ready = httpx.get(gw.url + "/health/ready", timeout=10)
        assert ready.status_code == 200  # the group can still answer
        state = ready.json()["checks"]["backends"]
        assert state["a"]["ok"] is False and state["b"]["ok"] is True
        assert "/health_generate" in state["a"]["reason"] or "cooling down" in state["a"]["reason"]
        assert gw.metric("mixguard_deployment_up", backend="a") == 0
        assert gw.metric("mixguard_deployment_cooldowns_total", backend="a") >= 1
    finally:
        a.configure(hang=False)
    # /health_generate passes again: a is back after its cooldown, and its conversations go home
    assert wait_for(lambda: gw.metric("mixguard_deployment_up", backend="a") == 1, 15)
    assert backend_of(client, on_a) == "a"


def test_simple_shuffle_spreads_one_conversation_over_both_replicas(pair, redis_server):
    reset(*pair)
    g = Gateway(pair_config(*pair, redis_server.url, {"routing_strategy": "simple-shuffle"}, pii={"enabled": False}))
    try:
        c = openai.OpenAI(base_url=g.url + "/v1", api_key=Gateway.KEY, max_retries=0, timeout=30)
        served = [backend_of(c, "one conversation") for _ in range(24)]
        assert set(served) == {"a", "b"}  # weighted random, no affinity (P(one replica only) = 2**-23)
        assert g.metric("mixguard_balancer_picks_total", how="shuffle") == 24
    finally:
        g.stop()
