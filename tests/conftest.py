"""Fixtures: a real Redis server, stand-in SGLang servers (or a real SGLang URL), gateways.

Set MIXGUARD_TEST_SGLANG_URL (and MIXGUARD_TEST_SGLANG_MODEL) to run the same tests against a
real SGLang server; answers then come from a model, so echo-only assertions are replaced by shape
checks (see `backend.echo`). MIXGUARD_TEST_REDIS_SERVER picks the Redis binary (valkey | redis-server).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import Gateway, RedisProc, Standin, gateway_config

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@dataclass
class Primary:
    """The primary backend under test: a stand-in (echo) or a real SGLang server."""

    url: str
    model: str
    echo: bool
    standin: Standin | None

    def params(self, **extra) -> dict:
        # A real server (dummy weights never stop on EOS) gets a per-deployment max_tokens default.
        cap = {} if self.echo else {"max_tokens": int(os.environ.get("MIXGUARD_TEST_SGLANG_MAX_TOKENS", "24"))}
        return {"model": f"openai/{self.model}", "api_base": f"{self.url}/v1", **cap, **extra}


@pytest.fixture(scope="session")
def redis_server():
    r = RedisProc().start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def primary():
    real = os.environ.get("MIXGUARD_TEST_SGLANG_URL")
    if real:
        p = Primary(real.rstrip("/"), os.environ.get("MIXGUARD_TEST_SGLANG_MODEL", "default"), False, None)
        # A fresh server compiles its kernels on the first requests (tens of seconds): pay that here.
        import httpx

        for _ in range(2):
            httpx.post(
                f"{p.url}/v1/chat/completions",
                timeout=600,
                json={"model": p.model, "max_tokens": 8, "messages": [{"role": "user", "content": "warm up " * 40}]},
            )
        yield p
        return
    s = Standin()
    yield Primary(s.url, "mistralai/Mixtral-8x7B-Instruct-v0.1", True, s)
    s.stop()


@pytest.fixture(scope="module")
def gateway(primary, redis_server):
    g = Gateway(gateway_config(primary.params(), redis_url=redis_server.url))
    yield g
    g.stop()


@pytest.fixture
def client(gateway):
    from openai import OpenAI

    return OpenAI(base_url=gateway.url + "/v1", api_key=Gateway.KEY, max_retries=0, timeout=30)


def pytest_collection_modifyitems(items):
    """Tests that touch the Redis server are re-run by scripts/test.sh against redis-server 7."""
    for item in items:
        if "redis_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis_server)
