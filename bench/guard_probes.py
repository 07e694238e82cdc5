"""Prints how many hostile requests got around the guard: raw values at the backend, requests to a
client-chosen server, responses of 500 or more.

The probes are issue 12's (every text field, invisible and look-alike characters, connection fields
on chat and responses, malformed shapes); they are the same lists the tests in
tests/integration/test_guard_bypass.py assert on, sent here once each and counted.

    python bench/guard_probes.py
"""

from __future__ import annotations

import json
import sys

import httpx

from _harness import ROOT, Gateway, RedisProc, Standin, gateway_config, machine

sys.path.insert(0, str(ROOT / "tests" / "integration"))
import test_guard_bypass as probes


def main() -> None:
    redis = RedisProc().start()
    sglang, legit, attacker = Standin(), Standin(), Standin()
    fb = {"id": "hosted", "params": {"model": "openai/mixtral-8x7b", "api_key": "provider-key"}}
    gw = Gateway(  # the provider's address from the environment: litellm would let a body override it
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"{sglang.url}/v1"}, fallbacks=[fb], redis_url=redis.url
        ),
        env={"OPENAI_BASE_URL": f"{legit.url}/v1"},
    )
    raw_at_backend = server_errors = sent = 0
    try:

        def send(path: str, body: dict) -> httpx.Response:
            nonlocal server_errors, sent
            sent += 1
            r = httpx.post(gw.url + path, headers=probes.HEADERS, json=body, timeout=30)
            server_errors += r.status_code >= 500
            return r

        def leaked(s: Standin, *values: str) -> bool:
            seen = json.dumps(s.last_request(), ensure_ascii=False)
            return any(v in seen for v in values)

        for _, path, body in probes.PROBES:
            send(path, body)
            raw_at_backend += leaked(sglang, probes.EMAIL)
        for _, value in probes.OBFUSCATED:
            send("/v1/chat/completions", probes.chat({"role": "user", "content": f"my details: {value} thanks"}))
            raw_at_backend += leaked(sglang, value, "quint")
        for ssn in ("536-22-\u200b8146", "536\u2060-22-8146", "５３６-22-8146"):
            r = send("/v1/chat/completions", probes.chat({"role": "user", "content": f"my SSN is {ssn}"}))
            raw_at_backend += r.status_code != 400
        for field, value in probes.STEERING.items():
            v = probes._steer(value, attacker)
            send(
                "/v1/chat/completions", {"model": "hosted-0", field: v, "messages": [{"role": "user", "content": "hi"}]}
            )
            send("/v1/responses", {"model": "hosted-0", field: v, "input": "hi"})
        for body, _ in probes.BAD + probes.BAD_RESPONSES:
            path = (
                "/v1/responses"
                if "input" in body
                else "/v1/completions"
                if "prompt" in body
                else "/v1/chat/completions"
            )
            send(path, body)
        to_attacker = int(attacker.last_request() != {})
    finally:
        gw.stop()
        for s in (sglang, legit, attacker):
            s.stop()
        redis.stop()
    print(f"# guard probes ({machine()})")
    print(f"requests sent:                               {sent}")
    print(f"raw values (or blocked SSNs) at the backend: {raw_at_backend}")
    print(f"requests to a client-chosen server:          {to_attacker}")
    print(f"responses of 500 or more:                    {server_errors}")


if __name__ == "__main__":
    main()
