"""The balancer (proxy/balancer.py), cooldowns and health checks (proxy/deployment_health.py), SGLang's
signals (proxy/sglang_signals.py) and the router that joins them, in process: fake deployments, a fake
clock, no network."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import pytest

from proxy import errors
from proxy.backends import Backend, BackendError, routing_key
from proxy.balancer import Balancer, conversation_key
from proxy.deployment_health import Cooldowns, DeploymentState, HealthMonitor
from proxy.routing import Router
from proxy.settings import ConfigError, parse_config
from proxy.sglang_signals import parse


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def states(*names: str, weights: tuple[float, ...] = ()) -> list[DeploymentState]:
    return [DeploymentState(n, weight=(weights[i] if weights else 1.0)) for i, n in enumerate(names)]


def first(b: Balancer[DeploymentState], key: str, now: float = 0.0) -> str:
    ready, _, _ = b.order(key, now)
    return ready[0].name


# --- prefix affinity -------------------------------------------------------------------------------


def test_a_conversation_key_always_picks_the_same_replica():
    b = Balancer(states("a", "b", "c"))
    for i in range(200):
        assert len({first(b, f"conv-{i}") for _ in range(5)}) == 1


def test_two_gateways_with_one_config_agree_on_every_conversation():
    one, other = Balancer(states("a", "b", "c")), Balancer(states("a", "b", "c"))
    assert all(first(one, f"k{i}") == first(other, f"k{i}") for i in range(500))


def test_new_conversations_spread_by_weight():
    b = Balancer(states("big", "small", weights=(3.0, 1.0)))
    counts = Counter(first(b, f"conversation {i}") for i in range(8000))
    share = counts["big"] / 8000
    assert 0.68 < share < 0.82, counts  # 3:1 by weight, within the ring's granularity


def test_equal_weights_spread_evenly():
    b = Balancer(states("a", "b", "c", "d"))
    counts = Counter(first(b, f"c{i}") for i in range(8000))
    assert all(1500 < n < 2500 for n in counts.values()), counts


def test_removing_a_replica_moves_only_its_conversations():
    before = Balancer(states("a", "b", "c"))
    after = Balancer(states("a", "b"))
    moved = [
        i for i in range(3000) if first(before, f"k{i}") != "c" and first(before, f"k{i}") != first(after, f"k{i}")
    ]
    assert moved == []


def test_a_busy_replica_passes_new_work_to_its_ring_successor_and_takes_it_back_when_idle():
    sts = states("a", "b")
    b = Balancer(sts)
    key = next(f"k{i}" for i in range(100) if first(b, f"k{i}") == "a")
    sts[0].outstanding = 4  # a has 4 in flight, b none: a's share of 5 would be ceil(1.25*5/2) = 4
    ready, _, how = b.order(key, 0.0)
    assert [m.name for m in ready] == ["b", "a"] and how == "overflow"
    sts[0].outstanding = 1
    ready, _, how = b.order(key, 0.0)
    assert ready[0].name == "a" and how == "affinity"


def test_queue_depth_reported_by_sglang_counts_as_load():
    from proxy.sglang_signals import SGLangSignals

    sts = states("a", "b")
    b = Balancer(sts)
    key = next(f"k{i}" for i in range(100) if first(b, f"k{i}") == "a")
    sts[0].signals = SGLangSignals(queued=10)
    assert first(b, key) == "b"


def test_bounded_load_keeps_every_replica_near_its_share_under_one_hot_conversation():
    sts = states("a", "b", "c")
    b = Balancer(sts)
    for _ in range(30):  # 30 concurrent requests of one conversation, none finished yet
        ready, _, _ = b.order("hot", 0.0)
        ready[0].outstanding += 1
    loads = sorted(s.outstanding for s in sts)
    # no replica above ceil(1.25 * 30 / 3) = 13: the conversation's own, then its ring successor, fill to
    # the bound, and the third takes the rest
    assert loads == [4, 13, 13], loads


# --- the other strategies --------------------------------------------------------------------------


def test_simple_shuffle_is_weighted_random_without_affinity():
    b = Balancer(states("a", "b", weights=(1.0, 3.0)), "simple-shuffle", rng=random.Random(7))
    picks = Counter(first(b, "one conversation") for _ in range(4000))
    assert 0.68 < picks["b"] / 4000 < 0.82, picks


def test_least_busy_picks_the_fewest_in_flight_per_weight():
    sts = states("a", "b", "c", weights=(1.0, 1.0, 4.0))
    sts[0].outstanding, sts[1].outstanding, sts[2].outstanding = 3, 1, 3
    b = Balancer(sts, "least-busy")
    assert [m.name for m in b.order("x", 0.0)[0]] == ["c", "b", "a"]  # 3/4 < 1/1 < 3/1


# --- cooldowns and health checks -------------------------------------------------------------------


def test_more_than_allowed_fails_within_a_minute_puts_a_deployment_in_cooldown():
    clock = Clock()
    cd, st = Cooldowns(allowed_fails=2, cooldown_time=5, clock=clock), DeploymentState("a")
    assert not cd.failed(st, "timeout") and not cd.failed(st, "timeout")
    assert st.available(clock())
    assert cd.failed(st, "timeout")
    assert not st.available(clock()) and st.cooldowns == 1
    clock.t += 5
    assert st.available(clock())


def test_failures_older_than_a_minute_do_not_count():
    clock = Clock()
    cd, st = Cooldowns(allowed_fails=1, cooldown_time=5, clock=clock), DeploymentState("a")
    cd.failed(st, "500")
    clock.t += 61
    assert not cd.failed(st, "500")
    assert st.available(clock())


def test_a_served_request_clears_failures_and_cooldown():
    clock = Clock()
    cd, st = Cooldowns(allowed_fails=0, cooldown_time=30, clock=clock), DeploymentState("a")
    assert cd.failed(st, "timeout")
    cd.succeeded(st)
    assert st.available(clock()) and not st.fails


def test_a_failed_health_check_keeps_a_deployment_out_until_one_passes():
    clock = Clock()
    cd, st = Cooldowns(allowed_fails=3, cooldown_time=5, clock=clock), DeploymentState("a")
    cd.probed(st, False, "GET /health_generate: no answer in 5s")
    clock.t += 3600
    assert not st.available(clock()) and "health check" in st.why_out(clock())
    cd.probed(st, True, "GET /health_generate -> 200")
    assert st.available(clock())


def test_cooldown_time_zero_turns_cooldowns_off():
    cd, st = Cooldowns(allowed_fails=0, cooldown_time=0), DeploymentState("a")
    assert not any(cd.failed(st, "500") for _ in range(10))
    assert st.available(time.monotonic())


def test_deployments_that_are_out_are_returned_apart_and_never_first():
    sts = states("a", "b", "c")
    sts[1].cooldown_until = 1e12
    for strategy in ("prefix-affinity", "simple-shuffle", "least-busy"):
        b = Balancer(sts, strategy)  # type: ignore[arg-type]
        for i in range(50):
            ready, out, _ = b.order(f"k{i}", 0.0)
            assert [m.name for m in out] == ["b"] and "b" not in [m.name for m in ready]


class FakeCheck:
    def __init__(self, ok: bool, metrics: str | None = None, delay: float = 0.0) -> None:
        self.ok, self.metrics, self.delay, self.calls = ok, metrics, delay, 0

    async def probe(self, timeout: float = 2.0) -> tuple[bool, str]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.ok, f"GET /health_generate -> {200 if self.ok else 503}"

    async def metrics_text(self, timeout: float) -> str | None:
        return self.metrics


def test_the_monitor_ejects_a_failing_deployment_and_reads_queue_depth():
    good = FakeCheck(True, 'sglang:num_queue_reqs{model_name="m"} 7\nsglang:cache_hit_rate{model_name="m"} 0.25\n')
    bad = FakeCheck(False)
    sa, sb = DeploymentState("a"), DeploymentState("b")
    mon = HealthMonitor([(good, sa), (bad, sb)], Cooldowns(3, 5), interval=10, timeout=1)
    asyncio.run(mon.check_all())
    assert sa.available(time.monotonic()) and not sb.available(time.monotonic())
    assert sa.signals is not None and sa.signals.queued == 7 and sa.signals.cache_hit_rate == 0.25
    assert sa.load() == 7 and sb.signals is None


# --- SGLang's /metrics -----------------------------------------------------------------------------

SGLANG_METRICS = """\
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{dp_rank="0",engine_type="unified",model_name="mixtral",pp_rank="0",tp_rank="0"} 3.0
sglang:num_running_reqs{dp_rank="1",engine_type="unified",model_name="mixtral",pp_rank="0",tp_rank="0"} 2.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{dp_rank="0",engine_type="unified",model_name="mixtral",pp_rank="0",tp_rank="0"} 4.0
sglang:num_queue_reqs{dp_rank="1",engine_type="unified",model_name="mixtral",pp_rank="0",tp_rank="0"} 1.0
# TYPE sglang:token_usage gauge
sglang:token_usage{dp_rank="0",model_name="mixtral"} 0.5
sglang:token_usage{dp_rank="1",model_name="mixtral"} 0.75
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{dp_rank="0",model_name="mixtral"} 0.4
sglang:cache_hit_rate{dp_rank="1",model_name="mixtral"} 0.6
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="mixtral"} 1200.0
# TYPE sglang:cached_tokens_total counter
sglang:cached_tokens_total{cache_source="device",model_name="mixtral"} 900.0
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_bucket{le="0.1",model_name="mixtral"} 5.0
"""


def test_sglang_metrics_of_several_data_parallel_ranks_combine():
    sig = parse(SGLANG_METRICS)
    assert sig is not None
    assert (sig.running, sig.queued, sig.token_usage) == (5.0, 5.0, 0.75)
    assert sig.cache_hit_rate == pytest.approx(0.5)
    assert (sig.prompt_tokens, sig.cached_tokens) == (1200.0, 900.0)


def test_metrics_without_sglang_names_give_no_signals():
    assert parse("# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 3\n") is None


# --- the conversation key --------------------------------------------------------------------------


def test_every_turn_of_a_conversation_has_the_same_key_and_other_conversations_another():
    turn1 = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "I am <PERSON_1>"}]}
    turn2 = {
        "messages": [
            *turn1["messages"],
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and my mail is <EMAIL_ADDRESS_1>"},
        ]
    }
    other = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "something else"}]}
    assert conversation_key("chat", turn1) == conversation_key("chat", turn2) != conversation_key("chat", other)
    assert conversation_key("chat", turn1, "c-1") == conversation_key("chat", other, "c-1")
    assert conversation_key("completions", {"prompt": "abc"}) != conversation_key("completions", {"prompt": "abd"})


# --- the router with fake deployments --------------------------------------------------------------


class FakeBackend(Backend):
    """A deployment that answers, fails with a 500, or hangs; records the routing key it was sent."""

    def __init__(self, deployment: Any, default_timeout: float) -> None:
        super().__init__(deployment, default_timeout)
        self.mode = "ok"
        self.calls = 0
        self.keys: list[str | None] = []

    async def request(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        self.keys.append(routing_key.get())
        if self.mode == "hang":
            try:
                await asyncio.wait_for(asyncio.Event().wait(), self.timeout)
            except asyncio.TimeoutError:
                raise BackendError(f"timeout after {self.timeout:g}s", timeout=True) from None
        if self.mode == "fail":
            raise BackendError("upstream status 500", status=500)
        if self.mode == "bad_request":
            raise BackendError("upstream status 400", status=400, retryable=False)
        return {"choices": [{"message": {"content": self.id}}]}

    async def stream(self, kind: str, body: dict[str, Any]):
        self.calls += 1
        if self.mode == "fail":
            raise BackendError("upstream status 500", status=500)
        yield {"choices": [{"delta": {"content": self.id}}]}
        yield {"choices": [{"delta": {"content": "!"}}]}


def make_router(monkeypatch: pytest.MonkeyPatch, router_settings: dict[str, Any], ids=("a", "b")) -> Router:
    monkeypatch.setattr("proxy.routing.make_backend", FakeBackend)
    cfg = parse_config(
        __import__("yaml").safe_dump(
            {
                "model_list": [
                    {"model_name": "m", "litellm_params": {"model": "openai/x"}, "model_info": {"id": i}} for i in ids
                ],
                "router_settings": {"timeout": 0.2, "health_check_interval": 0, **router_settings},
            }
        )
    )
    return Router(cfg)


def chat(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def test_router_keeps_a_conversation_on_one_deployment_and_sends_its_key(monkeypatch):
    router = make_router(monkeypatch, {})

    async def run() -> set[str]:
        served = set()
        for _ in range(5):
            _, result = await router.request("m", "chat", chat("hello"), conversation_id="conv-42")
            served.add(result.backend.id)
            assert router.states[result.backend].outstanding == 0
        return served

    served = asyncio.run(run())
    assert len(served) == 1
    backend = next(b for b in router.backends if b.id in served)
    assert len(set(backend.keys)) == 1 and backend.keys[0] == conversation_key("chat", chat("hello"), "conv-42")


def test_a_hung_deployment_costs_only_allowed_fails_plus_one_timeouts(monkeypatch):
    router = make_router(monkeypatch, {"allowed_fails": 1, "cooldown_time": 60})
    hung = router.groups["m"][0]
    hung.mode = "hang"  # type: ignore[attr-defined]

    async def run() -> list[float]:
        took = []
        for i in range(20):
            t = time.perf_counter()
            _, result = await router.request("m", "chat", chat(f"conversation {i}"))
            took.append(time.perf_counter() - t)
            assert result.backend.id == "b"
        return took

    took = asyncio.run(run())
    assert hung.calls == 2  # type: ignore[attr-defined]
    assert sum(t >= 0.2 for t in took) == 2
    assert sorted(took)[10] < 0.05


def test_a_cooling_deployment_is_still_tried_when_nothing_else_is_left(monkeypatch):
    router = make_router(monkeypatch, {"allowed_fails": 0, "cooldown_time": 60}, ids=("only",))
    only = router.groups["m"][0]
    only.mode = "fail"  # type: ignore[attr-defined]

    async def run() -> None:
        with pytest.raises(errors.GatewayError):
            await router.request("m", "chat", chat("x"))
        assert not router.states[only].available(time.monotonic())
        only.mode = "ok"  # type: ignore[attr-defined]
        _, result = await router.request("m", "chat", chat("x"))  # tried although cooling, and back in
        assert result.backend is only and router.states[only].available(time.monotonic())

    asyncio.run(run())


def test_a_callers_bad_request_does_not_count_against_the_deployment(monkeypatch):
    router = make_router(monkeypatch, {"allowed_fails": 0, "cooldown_time": 60}, ids=("only",))
    only = router.groups["m"][0]
    only.mode = "bad_request"  # type: ignore[attr-defined]

    async def run() -> None:
        for _ in range(3):
            with pytest.raises(errors.BadRequest):
                await router.request("m", "chat", chat("x"))

    asyncio.run(run())
    assert router.states[only].available(time.monotonic()) and router.states[only].cooldowns == 0


def test_a_stream_counts_as_in_flight_until_it_is_closed(monkeypatch):
    router = make_router(monkeypatch, {}, ids=("only",))
    st = router.states[router.groups["m"][0]]

    async def run() -> None:
        start = await router.open_stream("m", "chat", chat("x"))
        assert st.outstanding == 1
        rest = [ev async for ev in start.events]
        assert len(rest) == 1 and st.outstanding == 0
        start = await router.open_stream("m", "chat", chat("x"))
        await start.events.aclose()  # type: ignore[attr-defined]
        assert st.outstanding == 0

    asyncio.run(run())


def test_an_unknown_routing_strategy_is_a_config_error_with_its_line():
    text = "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x}\nrouter_settings:\n  routing_strategy: usage-based-routing\n"
    with pytest.raises(ConfigError, match=r"<config>:5: router_settings\.routing_strategy"):
        parse_config(text)


def test_strategy_and_cooldown_settings_use_litellms_names_and_defaults():
    cfg = parse_config("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, weight: 2}\n")
    rs = cfg.router_settings
    assert (rs.routing_strategy, rs.allowed_fails, rs.cooldown_time) == ("prefix-affinity", 3, 5.0)
    assert cfg.model_list[0].litellm_params.weight == 2
