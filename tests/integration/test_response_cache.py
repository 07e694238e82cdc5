"""Response cache end to end: the openai client → gateway → stand-in, real Presidio, real Redis.

Identical non-streamed requests of one API key are answered once by the backend; what Redis holds
is the masked answer (placeholders, never the caller's values), restored for each caller.
"""

from __future__ import annotations

import asyncio
import uuid

import openai
import pytest
import redis

from procs import Gateway, Standin, gateway_config

PII = "Maria Gonzalez"


@pytest.fixture(scope="module")
def cached(primary, redis_server):
    """(gateway with the response cache on, its stand-in, its Redis key prefix). A stand-in of its
    own: the tests count the requests that reach the backend."""
    s = Standin()
    prefix = f"mgtest-{uuid.uuid4().hex[:8]}:"
    g = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"{s.url}/v1"},
            redis_url=redis_server.url,
            extra={"redis_prefix": prefix, "response_cache": {"enabled": True, "ttl_s": 60}},
        )
    )
    yield g, s, prefix
    g.stop()
    s.stop()
    r = redis.Redis.from_url(redis_server.url)
    for k in r.scan_iter(match=f"{prefix}*"):  # only this module's keys
        r.delete(k)


def _ask(g: Gateway, text: str, key: str = Gateway.KEY, **kw):
    c = openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0, timeout=30)
    return c.chat.completions.with_raw_response.create(
        model="mixtral", messages=[{"role": "user", "content": text}], **kw
    )


def test_identical_requests_reach_the_backend_once_per_api_key(cached):
    g, s, _ = cached
    text = f"How do I export invoices? ({uuid.uuid4().hex})"
    before = s.metric("sglang:num_requests_total")
    first, second = _ask(g, text), _ask(g, text)
    assert first.headers["x-mixguard-cache"] == "miss" and second.headers["x-mixguard-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content == text
    assert second.headers["x-mixguard-backend"] == first.headers["x-mixguard-backend"] == "sglang"
    assert s.metric("sglang:num_requests_total") == before + 1
    other = _ask(g, text, key="sk-other-app-key")  # another key never sees this key's entries
    assert other.headers["x-mixguard-cache"] == "miss"
    assert s.metric("sglang:num_requests_total") == before + 2


def test_the_cache_holds_the_masked_answer_and_each_hit_is_restored(cached, redis_server):
    g, s, prefix = cached
    text = f"I am {PII}, please confirm my name. Ref {uuid.uuid4().hex}"
    _ask(g, text)
    second = _ask(g, text)
    assert second.headers["x-mixguard-cache"] == "hit"
    assert PII in second.parse().choices[0].message.content  # restored from the caller's vault
    assert PII not in str(s.last_request())
    stored = [
        v
        for k in redis.Redis.from_url(redis_server.url).scan_iter(match=f"{prefix}rcache:*")
        if (v := redis.Redis.from_url(redis_server.url).get(k))
    ]
    assert stored and not any(PII.encode() in v for v in stored)
    assert any(b"<PERSON_1>" in v for v in stored)


def test_per_request_cache_controls_and_what_is_not_cached(cached):
    g, s, _ = cached
    text = f"Summarise our refund policy ({uuid.uuid4().hex})"
    assert _ask(g, text, extra_body={"cache": {"no-store": True}}).headers["x-mixguard-cache"] == "miss"
    assert _ask(g, text).headers["x-mixguard-cache"] == "miss"  # nothing was stored
    assert "cache" not in s.last_request()  # the controls never reach a backend
    assert _ask(g, text).headers["x-mixguard-cache"] == "hit"
    before = s.metric("sglang:num_requests_total")
    assert _ask(g, text, extra_body={"cache": {"no-cache": True}}).headers["x-mixguard-cache"] == "miss"
    assert s.metric("sglang:num_requests_total") == before + 1
    cut = f"Tell me a long story about invoices ({uuid.uuid4().hex}) " * 4
    assert _ask(g, cut, max_tokens=3).parse().choices[0].finish_reason == "length"
    assert _ask(g, cut, max_tokens=3).headers["x-mixguard-cache"] == "miss"  # a cut answer is not replayed


def _stream(g: Gateway, text: str, **kw) -> tuple[str, str, dict]:
    """(header, text the caller read, usage) of a streamed chat completion."""
    c = openai.OpenAI(base_url=g.url + "/v1", api_key=Gateway.KEY, max_retries=0, timeout=30)
    raw = c.chat.completions.with_raw_response.create(
        model="mixtral",
        messages=[{"role": "user", "content": text}],
        stream=True,
        stream_options={"include_usage": True},
        **kw,
    )
    pieces, usage = [], None
    for chunk in raw.parse():
        if chunk.usage:
            usage = chunk.usage
        pieces += [c.delta.content for c in chunk.choices if c.delta.content]
    return raw.headers.get("x-mixguard-cache", ""), "".join(pieces), usage


def test_streams_replay_cached_answers_and_complete_streams_are_stored(cached):
    g, s, _ = cached
    text = f"I am {PII}; list the export formats ({uuid.uuid4().hex})"
    first = _ask(g, text)  # stored by a non-streamed request
    before = s.metric("sglang:num_requests_total")
    header, streamed, usage = _stream(g, text)
    assert header == "hit" and streamed == first.parse().choices[0].message.content and PII in streamed
    assert usage is not None and usage.completion_tokens == first.parse().usage.completion_tokens
    assert s.metric("sglang:num_requests_total") == before  # replayed, not asked again
    other = f"Which browsers are supported? ({uuid.uuid4().hex})"
    header, streamed, _ = _stream(g, other)  # a complete stream is stored ...
    assert header == "miss"
    again = _ask(g, other)  # ... and answers the next request
    assert again.headers["x-mixguard-cache"] == "hit" and again.parse().choices[0].message.content == streamed == other


def test_an_unreachable_cache_is_a_miss_not_an_error():
    import redis.asyncio as aioredis

    from proxy.response_cache import ResponseCache

    cache = ResponseCache("mgtest:", 60, 4096, b"k" * 32)
    cache.bind_redis(aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5))
    key = cache.key("key", "v1", "chat", {"model": "m", "messages": [], "stream": True, "user": "u"})
    assert key == cache.key("key", "v1", "chat", {"model": "m", "messages": []})  # stream/user do not split it
    assert key != cache.key("other", "v1", "chat", {"model": "m", "messages": []})
    assert asyncio.run(cache.get(key)) is None
    assert asyncio.run(cache.put(key, b"{}", "sglang")) is False
