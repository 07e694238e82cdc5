"""Per-key rate limits end to end: the openai client → gateway → stand-in, limits kept in real Redis."""

from __future__ import annotations

import asyncio
import uuid

import openai
import pytest
import redis

from procs import Gateway, gateway_config


@pytest.fixture(scope="module")
def limited(primary, redis_server):
    prefix = f"mgtest-{uuid.uuid4().hex[:8]}:"
    cfg = gateway_config(primary.params(), redis_url=redis_server.url, extra={"redis_prefix": prefix})
    cfg["mixguard"]["api_keys"] += [
        {"key": "sk-rpm-two", "app": "rpm", "id": "rpm-key", "rpm_limit": 2},
        {"key": "sk-tpm-small", "app": "tpm", "id": "tpm-key", "tpm_limit": 30},
        {"key": "sk-tpm-stream", "app": "tpm", "id": "tpm-stream", "tpm_limit": 30},
    ]
    g = Gateway(cfg)
    yield g
    g.stop()
    r = redis.Redis.from_url(redis_server.url)
    for k in r.scan_iter(match=f"{prefix}*"):  # only this module's keys
        r.delete(k)


def _ask(g: Gateway, key: str, text: str = "How do I export my invoices to a spreadsheet?"):
    c = openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0, timeout=30)
    return c.chat.completions.with_raw_response.create(model="mixtral", messages=[{"role": "user", "content": text}])


def test_requests_beyond_a_keys_rpm_get_429_with_retry_after_and_other_keys_go_on(limited):
    first, second = _ask(limited, "sk-rpm-two"), _ask(limited, "sk-rpm-two")
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as e:
        _ask(limited, "sk-rpm-two")
    err = e.value
    assert err.status_code == 429 and err.code == "rate_limit_exceeded" and err.type == "rate_limit_error"
    assert "2 requests per minute" in err.message and "rpm-key" in err.message
    assert 1 <= int(err.response.headers["retry-after"]) <= 30
    assert _ask(limited, Gateway.KEY).http_response.status_code == 200  # a key without limits


def test_tokens_of_answers_count_against_a_keys_tpm(limited):
    text = "Summarise the attached quarterly report for the board, in plain words please. " * 3
    ok = _ask(limited, "sk-tpm-small", text)
    assert ok.parse().usage.total_tokens > 30  # more than a minute's allowance
    with pytest.raises(openai.RateLimitError) as e:
        _ask(limited, "sk-tpm-small", "and now a short one")
    assert "30 tokens per minute" in e.value.message
    assert int(e.value.response.headers["retry-after"]) >= 2


def test_a_stream_that_did_not_ask_for_usage_is_charged_and_shows_none(limited):
    """The gateway asks the backend for a stream's usage whatever the caller asked, so tpm limits
    hold for streams too; a caller that did not ask sees OpenAI's shape: no usage anywhere."""
    c = openai.OpenAI(base_url=limited.url + "/v1", api_key="sk-tpm-stream", max_retries=0, timeout=30)
    text = "Summarise the attached quarterly report for the board, in plain words please. " * 3
    chunks = list(
        c.chat.completions.create(
            model="mixtral", stream=True, max_tokens=64, messages=[{"role": "user", "content": text}]
        )
    )
    assert chunks and all(ch.choices and ch.usage is None for ch in chunks)
    assert any(ch.choices[0].finish_reason for ch in chunks)
    with pytest.raises(openai.RateLimitError) as e:
        _ask(limited, "sk-tpm-stream", "and now a short one")
    assert "30 tokens per minute" in e.value.message


def test_an_unreachable_limiter_lets_requests_through():
    import redis.asyncio as aioredis

    from proxy.rate_limit import RateLimiter

    limiter = RateLimiter("mgtest:", {"k": (1, 10)})
    limiter.bind_redis(aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5))

    async def both() -> dict:
        headers = await limiter.admit("k")
        limiter.charge("k", {"total_tokens": 50})  # no error either
        await asyncio.gather(*limiter._charges)
        return headers

    assert asyncio.run(both()) == {}
