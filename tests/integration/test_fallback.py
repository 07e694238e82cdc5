"""Fallback from a failing SGLang primary to a 'hosted provider' (a second stand-in addressed through
litellm's mistral/ provider), and cancellation of upstream work when the client goes away."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from procs import Gateway, Standin, gateway_config


@pytest.fixture(scope="module")
def faulty():
    s = Standin()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def hosted(primary):
    """The fallback: a real SGLang URL if given, else a stand-in, reached via litellm's mistral/ provider."""
    s = None
    url = primary.url
    if primary.standin is not None:
        s = Standin()
        url = s.url
    cap = {} if primary.echo else {"max_tokens": 24}  # a real server with dummy weights never stops on its own
    yield (
        {
            "id": "mistral-hosted",
            "params": {"model": "mistral/open-mixtral-8x7b", "api_base": f"{url}/v1", "api_key": "test-key", **cap},
        },
        s,
    )
    if s:
        s.stop()


@pytest.fixture(scope="module")
def fb_gateway(faulty, hosted, redis_server):
    fb, _ = hosted
    g = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"{faulty.url}/v1", "timeout": 1.5},
            fallbacks=[fb],
            redis_url=redis_server.url,
            # each test here sees one request's fallback: no cooldowns or health checks carried between them
            router={"cooldown_time": 0, "health_check_interval": 0},
        )
    )
    yield g
    g.stop()


@pytest.fixture
def fb_client(fb_gateway):
    return openai.OpenAI(base_url=fb_gateway.url + "/v1", api_key=Gateway.KEY, max_retries=0, timeout=30)


def _reset(faulty: Standin, **faults) -> None:
    faulty.configure(**{"error_rate": 0.0, "hang": False, "drop_after": None, "token_ms": 0.0, **faults})


def test_healthy_primary_serves(faulty, fb_client):
    _reset(faulty)
    raw = fb_client.chat.completions.with_raw_response.create(
        model="mixtral", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-mixguard-backend"] == "sglang"
    assert "x-mixguard-fallback-reason" not in raw.headers


def test_primary_5xx_falls_back_in_same_request(faulty, fb_gateway, fb_client, hosted):
    _reset(faulty, error_rate=1.0)
    before = fb_gateway.metric("mixguard_fallbacks_total", backend="mistral-hosted")
    raw = fb_client.chat.completions.with_raw_response.create(
        model="mixtral", messages=[{"role": "user", "content": "fallback please"}]
    )
    assert raw.headers["x-mixguard-backend"] == "mistral-hosted"
    assert "500" in raw.headers["x-mixguard-fallback-reason"]
    if hosted[1] is not None:
        assert raw.parse().choices[0].message.content == "fallback please"
    assert fb_gateway.metric("mixguard_fallbacks_total", backend="mistral-hosted") == before + 1
    assert fb_gateway.metric("mixguard_requests_total", route="chat", backend="mistral-hosted", status="200") >= 1


def test_primary_hang_times_out_then_falls_back(faulty, fb_client):
    _reset(faulty, hang=True)
    t0 = time.monotonic()
    raw = fb_client.chat.completions.with_raw_response.create(
        model="mixtral", messages=[{"role": "user", "content": "hang"}]
    )
    assert raw.headers["x-mixguard-backend"] == "mistral-hosted"
    assert "timeout" in raw.headers["x-mixguard-fallback-reason"]
    assert time.monotonic() - t0 < 10


def test_streaming_falls_back_before_first_byte(faulty, fb_client, hosted):
    _reset(faulty, error_rate=1.0)
    stream = fb_client.chat.completions.with_raw_response.create(
        model="mixtral", stream=True, messages=[{"role": "user", "content": "stream via fallback"}]
    )
    assert stream.headers["x-mixguard-backend"] == "mistral-hosted"
    text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    if hosted[1] is not None:
        assert text == "stream via fallback"


def test_stream_broken_after_first_byte_reports_error_not_fallback(faulty, fb_client):
    # token_ms: the first event must reach the gateway before the break; a stream that breaks
    # before anything was read legitimately falls back instead (nothing was sent yet).
    _reset(faulty, drop_after=2, token_ms=50.0)
    got = []
    with pytest.raises(openai.APIError):
        for c in fb_client.chat.completions.create(
            model="mixtral", stream=True, messages=[{"role": "user", "content": "one two three four five six"}]
        ):
            if c.choices and c.choices[0].delta.content:
                got.append(c.choices[0].delta.content)
    assert 1 <= len(got) <= 2


def test_all_backends_failing_is_502(faulty, hosted, redis_server):
    _reset(faulty, error_rate=1.0)
    g = Gateway(gateway_config({"model": "openai/mixtral", "api_base": f"{faulty.url}/v1"}, redis_url=redis_server.url))
    try:
        r = httpx.post(
            g.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {Gateway.KEY}"},
            json={"model": "mixtral", "messages": [{"role": "user", "content": "x"}]},
            timeout=10,
        )
        assert r.status_code == 502 and r.json()["error"]["code"] == "bad_gateway"
        ready = httpx.get(g.url + "/health/ready", timeout=10)
        assert ready.status_code == 503  # readiness asks SGLang's /health_generate, which fails with generation
        assert "/health_generate" in ready.json()["checks"]["backends"]["sglang"]["reason"]
    finally:
        g.stop()
        _reset(faulty)


def test_unreachable_backend_is_reported_by_readiness(redis_server):
    from procs import free_port

    dead = free_port()
    g = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"http://127.0.0.1:{dead}/v1"}, redis_url=redis_server.url
        )
    )
    try:
        r = httpx.get(g.url + "/health/ready", timeout=10)
        assert r.status_code == 503
        assert "unreachable" in r.json()["checks"]["backends"]["sglang"]["reason"]
        c = httpx.post(
            g.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {Gateway.KEY}"},
            json={"model": "mixtral", "messages": [{"role": "user", "content": "x"}]},
            timeout=10,
        )
        assert c.status_code == 502 and "connection error" in c.json()["error"]["message"]
    finally:
        g.stop()


def test_readiness_counts_a_group_whose_fallback_serves(hosted, redis_server):
    """Every primary deployment down, the fallback up: ready (requests are served), and the answer says how."""
    from procs import free_port

    fb, _ = hosted
    dead = free_port()
    g = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"http://127.0.0.1:{dead}/v1"},
            fallbacks=[fb],
            redis_url=redis_server.url,
        )
    )
    try:
        r = httpx.get(g.url + "/health/ready", timeout=10)
        checks = r.json()["checks"]
        assert r.status_code == 200, checks
        assert checks["backends"]["sglang"]["ok"] is False
        assert checks["groups"]["mixtral"] == {"ok": True, "via_fallback": "hosted-0"}
    finally:
        g.stop()


def test_client_disconnect_cancels_upstream_stream(faulty, fb_gateway):
    _reset(faulty, token_ms=50)
    before = faulty.metric("standin_streams_cancelled_total")
    words = " ".join(f"word{i}" for i in range(200))
    with httpx.stream(
        "POST",
        fb_gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {Gateway.KEY}"},
        json={"model": "mixtral", "stream": True, "messages": [{"role": "user", "content": words}]},
        timeout=30,
    ) as r:
        it = r.iter_lines()
        seen = [next(it) for _ in range(6)]
        assert any(line.startswith("data: ") for line in seen)
    deadline = time.time() + 5
    while time.time() < deadline and faulty.metric("standin_streams_cancelled_total") <= before:
        time.sleep(0.1)
    assert faulty.metric("standin_streams_cancelled_total") == before + 1
    _reset(faulty)
