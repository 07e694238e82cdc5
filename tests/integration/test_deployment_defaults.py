"""Sampling params in a deployment's litellm_params are request defaults, as in LiteLLM."""

from __future__ import annotations

import openai

from procs import Gateway, Standin, gateway_config


def test_litellm_params_sampling_values_are_defaults_the_caller_can_override(redis_server):
    s = Standin()
    g = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"{s.url}/v1", "max_tokens": 7, "temperature": 0.1},
            redis_url=redis_server.url,
        )
    )
    try:
        c = openai.OpenAI(base_url=g.url + "/v1", api_key=Gateway.KEY, max_retries=0, timeout=30)
        c.chat.completions.create(model="mixtral", messages=[{"role": "user", "content": "hi"}])
        seen = s.last_request()
        assert seen["max_tokens"] == 7 and seen["temperature"] == 0.1 and seen["model"] == "mixtral"
        c.chat.completions.create(model="mixtral", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        assert s.last_request()["max_tokens"] == 3
    finally:
        g.stop()
        s.stop()
