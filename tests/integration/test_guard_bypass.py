"""Nothing gets around the guard: every field that carries text is masked before a backend sees it,
fields the gateway does not know are not forwarded, connection fields are never taken from a body,
known parameters without text pass unchanged, and malformed shapes are 400s naming the field.

Each probe is what a hostile client sent in an earlier round (issue 12); the stand-in records the
body exactly as it arrived, so "the raw value never reached the backend" is read off the backend.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from procs import Gateway, Standin, gateway_config

EMAIL = "zora.quint@example.org"
V = f"please write to {EMAIL} today"  # a value that must never reach a backend raw
HEADERS = {"Authorization": f"Bearer {Gateway.KEY}"}


@pytest.fixture(scope="module")
def sglang():
    s = Standin()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def legit():
    """The hosted provider the config names (reached through litellm, its address from OPENAI_BASE_URL)."""
    s = Standin()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def attacker():
    """A server a client would like the gateway to call, with the provider's key."""
    s = Standin()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(sglang, legit, redis_server):
    # The provider's address comes from the environment, as operators often set it: litellm lets a
    # body's api_base override that (not one given in litellm_params), so this is where SSRF showed.
    fb = {"id": "hosted", "params": {"model": "openai/mixtral-8x7b", "api_key": "provider-secret-key"}}
    g = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"{sglang.url}/v1"}, fallbacks=[fb], redis_url=redis_server.url
        ),
        env={"OPENAI_BASE_URL": f"{legit.url}/v1"},
    )
    yield g
    g.stop()


def post(gw: Gateway, path: str, body: dict, **kw) -> httpx.Response:
    return httpx.post(gw.url + path, headers={**HEADERS, **kw.pop("headers", {})}, json=body, timeout=30, **kw)


def seen(s: Standin) -> str:
    return json.dumps(s.last_request(), ensure_ascii=False)


def chat(*messages: dict, **extra) -> dict:
    return {"model": "mixtral", "messages": list(messages) or [{"role": "user", "content": "hello"}], **extra}


USER = {"role": "user", "content": "hello"}
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": {"q": V}}}],
}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "found"}
LOOKUP = {"type": "function", "function": {"name": "lookup", "description": "x", "parameters": {"type": "object"}}}

#: (name, endpoint path, body) — every one carries V in a field the guardrails did not read before.
PROBES = [
    ("content part", "/v1/chat/completions", chat({"role": "user", "content": [{"type": "text", "text": V}]})),
    ("user", "/v1/chat/completions", chat(USER, user=V)),
    ("metadata value", "/v1/chat/completions", chat(USER, metadata={"note": V})),
    ("metadata key", "/v1/chat/completions", chat(USER, metadata={EMAIL: "x"})),
    # both masked: the value is rewritten before its key is renamed (a 500 found by the fuzz suite)
    ("metadata key and value", "/v1/chat/completions", chat(USER, metadata={EMAIL: V, "n": {EMAIL: [V]}})),
    ("message name", "/v1/chat/completions", chat({"role": "user", "content": "hi", "name": V})),
    (
        "tool description",
        "/v1/chat/completions",
        chat(USER, tools=[{**LOOKUP, "function": {**LOOKUP["function"], "description": V}}]),
    ),
    (
        "tool parameter description",
        "/v1/chat/completions",
        chat(
            USER,
            tools=[
                {
                    **LOOKUP,
                    "function": {
                        **LOOKUP["function"],
                        "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": V}}},
                    },
                }
            ],
        ),
    ),
    ("tool-call arguments as object", "/v1/chat/completions", chat(USER, CALL, TOOL_RESULT, tools=[LOOKUP])),
    (
        "tool-call arguments as string",
        "/v1/chat/completions",
        chat(
            USER,
            {
                **CALL,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"q": V})},
                    }
                ],
            },
            TOOL_RESULT,
            tools=[LOOKUP],
        ),
    ),
    (
        "legacy function_call",
        "/v1/chat/completions",
        chat(
            USER,
            {"role": "assistant", "content": None, "function_call": {"name": "lookup", "arguments": V}},
            {"role": "function", "name": "lookup", "content": "ok"},
            USER,
        ),
    ),
    (
        "response_format schema",
        "/v1/chat/completions",
        chat(
            USER,
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "out",
                    "description": V,
                    "schema": {"type": "object", "properties": {"a": {"type": "string", "description": V}}},
                },
            },
        ),
    ),
    ("stop", "/v1/chat/completions", chat(USER, stop=[V])),
    (
        "assistant refusal",
        "/v1/chat/completions",
        chat(USER, {"role": "assistant", "content": "no", "refusal": V}, USER),
    ),
    (
        "image URL",
        "/v1/chat/completions",
        chat(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"https://img.example.net/u?mail={EMAIL}"}},
                ],
            }
        ),
    ),
    (
        "tool_call_id",
        "/v1/chat/completions",
        chat(
            USER,
            {
                **CALL,
                "tool_calls": [{"id": EMAIL, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": EMAIL, "content": "x"},
            tools=[LOOKUP],
        ),
    ),
    (
        "reasoning_content",
        "/v1/chat/completions",
        chat(USER, {"role": "assistant", "content": "ok", "reasoning_content": V}, USER),
    ),
    ("SGLang regex and ebnf", "/v1/chat/completions", chat(USER, regex=V, ebnf=f'root ::= "{EMAIL}"')),
    ("chat_template_kwargs", "/v1/chat/completions", chat(USER, chat_template_kwargs={"system_hint": V})),
    ("unknown field", "/v1/chat/completions", chat(USER, whatever=V)),
    ("unknown field in a message", "/v1/chat/completions", chat({**USER, "note": V})),
    ("completions prompt list", "/v1/completions", {"model": "mixtral", "prompt": ["a", V]}),
    ("completions suffix", "/v1/completions", {"model": "mixtral", "prompt": "a", "suffix": V}),
    ("completions user", "/v1/completions", {"model": "mixtral", "prompt": "a", "user": V}),
    ("responses instructions", "/v1/responses", {"model": "mixtral", "instructions": V, "input": "hi"}),
    (
        "responses input parts",
        "/v1/responses",
        {"model": "mixtral", "input": [{"role": "user", "content": [{"type": "input_text", "text": V}]}]},
    ),
    (
        "responses tool description",
        "/v1/responses",
        {
            "model": "mixtral",
            "input": "hi",
            "tools": [{"type": "function", "name": "lookup", "description": V, "parameters": {"type": "object"}}],
        },
    ),
    (
        "responses function call items",
        "/v1/responses",
        {
            "model": "mixtral",
            "input": [
                {"role": "user", "content": "hi"},
                {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": json.dumps({"q": V})},
                {"type": "function_call_output", "call_id": "c1", "output": {"result": V}},
            ],
        },
    ),
    (
        "responses text.format schema",
        "/v1/responses",
        {
            "model": "mixtral",
            "input": "hi",
            "text": {"format": {"type": "json_schema", "name": "o", "description": V, "schema": {"type": "object"}}},
        },
    ),
    ("responses user", "/v1/responses", {"model": "mixtral", "input": "hi", "user": V}),
]


@pytest.mark.parametrize("name,path,body", PROBES, ids=[p[0] for p in PROBES])
def test_no_text_field_reaches_the_backend_raw(gw, sglang, name, path, body):
    marker = uuid.uuid4().hex[:8]
    body = {**body, "seed": int(marker, 16) % 100000}  # tells this probe's request apart at the stand-in
    r = post(gw, path, body)
    assert r.status_code == 200, (name, r.text[:300])
    got = sglang.last_request()
    assert got.get("seed") == body["seed"], "the probe did not reach the backend"
    text = json.dumps(got, ensure_ascii=False)
    assert EMAIL not in text and "zora" not in text.lower(), name
    if "unknown" not in name:
        assert "<EMAIL_ADDRESS_" in text, f"{name}: the field was dropped, not masked"


def test_unknown_fields_are_rejected_or_scanned_as_the_policy_says(sglang, redis_server, tmp_path):
    import yaml

    from procs import ROOT

    default = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    for mode in ("reject", "scan"):
        d = tmp_path / mode
        d.mkdir()
        (d / "default.yaml").write_text(yaml.safe_dump({**default, "request": {"unknown_fields": mode}}))
        g = Gateway(
            gateway_config(
                {"model": "openai/mixtral", "api_base": f"{sglang.url}/v1"},
                redis_url=redis_server.url,
                extra={"policies_dir": str(d)},
            )
        )
        try:
            r = post(g, "/v1/chat/completions", chat(USER, whatever={"deep": [V]}, seed=4242))
            if mode == "reject":
                assert r.status_code == 400 and r.json()["error"]["param"] == "whatever"
                assert r.json()["error"]["code"] == "unknown_parameter"
            else:
                assert r.status_code == 200, r.text
                got = sglang.last_request()
                assert got["seed"] == 4242 and EMAIL not in json.dumps(got)
                assert got["whatever"]["deep"][0].startswith("please write to <EMAIL_ADDRESS_")
                # a connection field is never forwarded, not even under scan
                post(g, "/v1/chat/completions", chat(USER, api_base="http://127.0.0.1:9/v1", seed=4343))
                got = sglang.last_request()
                assert got["seed"] == 4343 and "api_base" not in got
        finally:
            g.stop()


OBFUSCATED = [
    ("zero-width space in email", "zora.quint\u200b@example.org"),
    ("word joiner in email", "zora.quint@exam\u2060ple.org"),
    ("soft hyphen in email", "zora.\u00adquint@example.org"),
    ("BOM in email", "zora.quint@\ufeffexample.org"),
    ("fullwidth at sign", "zora.quint\uff20example.org"),
    ("fullwidth full stop", "zora.quint@example\uff0eorg"),
    ("zero-width in card", "4111 1111\u200b 1111 1111"),
    ("soft hyphen in IBAN", "GB82 WEST 1234 5698\u00ad7654 32"),
]


@pytest.mark.parametrize("name,value", OBFUSCATED, ids=[o[0] for o in OBFUSCATED])
def test_invisible_and_look_alike_characters_do_not_hide_a_value(gw, sglang, name, value):
    r = post(gw, "/v1/chat/completions", chat({"role": "user", "content": f"my details: {value} thanks"}, seed=777))
    assert r.status_code == 200, r.text[:300]
    got = sglang.last_request()["messages"][0]["content"]
    assert value not in got and "quint" not in got and "1111" not in got and "5698" not in got, (name, got)
    assert "my details: <" in got and got.endswith("> thanks"), got  # the mask covers the hidden characters too


@pytest.mark.parametrize("ssn", ["536-22-\u200b8146", "536\u2060-22-8146", "５３６-22-8146", "536-22-8146"])
def test_a_block_rule_holds_through_obfuscation(gw, ssn):
    r = post(gw, "/v1/chat/completions", chat({"role": "user", "content": f"my SSN is {ssn}"}))
    assert r.status_code == 400 and r.json()["error"]["code"] == "pii_blocked", r.text[:300]


# --- connection fields ---------------------------------------------------------------------------
STEERING = {
    "api_base": "{attacker}/v1",
    "base_url": "{attacker}/v1",
    "api_key": "sk-attacker",
    "api_version": "2099-01-01",
    "extra_headers": {"X-Forwarded-Host": "evil"},
    "custom_llm_provider": "openai",
    "organization": "evil-org",
    "extra_body": {"api_base": "{attacker}/v1"},
    "headers": {"Authorization": "Bearer x"},
    "mock_response": "PWNED-BY-MOCK",
    "timeout": 0.001,
    "num_retries": 5,
    "litellm_params": {"api_base": "{attacker}"},
    "aws_bedrock_runtime_endpoint": "{attacker}",
    "azure_ad_token": "x",
    "vertex_project": "x",
}


def _steer(value, attacker: Standin):
    if isinstance(value, str):
        return value.replace("{attacker}", attacker.url)
    if isinstance(value, dict):
        return {k: _steer(v, attacker) for k, v in value.items()}
    return value


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
@pytest.mark.parametrize("field", sorted(STEERING))
def test_connection_fields_are_never_taken_from_a_request(gw, legit, attacker, field, endpoint):
    value = _steer(STEERING[field], attacker)
    seed = abs(hash((field, endpoint))) % 100000
    if endpoint == "chat":
        r = post(
            gw,
            "/v1/chat/completions",
            {"model": "hosted-0", "seed": seed, field: value, "messages": [{"role": "user", "content": "hi"}]},
        )
    else:
        r = post(gw, "/v1/responses", {"model": "hosted-0", "seed": seed, field: value, "input": "hi"})
    assert r.status_code == 200, r.text[:300]
    assert "PWNED" not in r.text
    assert attacker.last_request() == {}, "the gateway called a client-chosen server"
    got = legit.last_request()
    assert got.get("seed", got.get("random_seed")) == seed, "the configured provider did not get the request"
    assert field not in got and "attacker" not in json.dumps(got)
    assert attacker.url not in json.dumps(got)


# --- known parameters pass through -------------------------------------------------------------------
KNOWN = {
    "temperature": 0.3,
    "top_p": 0.9,
    "n": 1,
    "max_tokens": 17,
    "max_completion_tokens": 17,
    "frequency_penalty": 0.1,
    "presence_penalty": -0.1,
    "seed": 11,
    "logit_bias": {"50256": -100},
    "logprobs": True,
    "top_logprobs": 2,
    "parallel_tool_calls": False,
    "tool_choice": "none",
    "service_tier": "auto",
    "reasoning_effort": "low",
    "store": False,
    # SGLang's extras
    "top_k": 40,
    "min_p": 0.05,
    "repetition_penalty": 1.1,
    "min_tokens": 1,
    "ignore_eos": False,
    "stop_token_ids": [2],
    "skip_special_tokens": True,
    "no_stop_trim": False,
    "separate_reasoning": False,
    "continue_final_message": False,
    "regex": "(yes|no)",
    "ebnf": 'root ::= "yes" | "no"',
    "json_schema": {"type": "string"},
    "chat_template_kwargs": {"enable_thinking": False},
}


def test_known_parameters_without_text_pass_through_unchanged(gw, sglang):
    r = post(gw, "/v1/chat/completions", chat(USER, tools=[LOOKUP], **KNOWN))
    assert r.status_code == 200, r.text[:300]
    got = sglang.last_request()
    for k, v in KNOWN.items():
        assert got.get(k) == v, k
    assert got["tools"] == [LOOKUP]


# --- malformed bodies ------------------------------------------------------------------------------------
BAD = [
    (chat({"role": "assistant", "content": "x", "tool_calls": "abc"}), "messages[0].tool_calls"),
    (chat({"role": "user", "content": [{"type": "text", "text": ["a"]}]}), "messages[0].content[0].text"),
    (chat({"role": "user", "content": [{"type": "text", "text": {"a": 1}}]}), "messages[0].content[0].text"),
    (chat({"role": "user", "content": ["plain", "strings"]}), "messages[0].content[0]"),
    (chat({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}), "messages[0].content[0].type"),
    (chat(USER, temperature="hot"), "temperature"),
    (chat(USER, stop=[1, 2]), "stop"),
    (chat(USER, tools=[{"type": "function", "function": {"name": "a b"}}]), "tools[0].function.name"),
    (chat(USER, logit_bias={"abc": 1}), "logit_bias.abc"),
    ({"model": "mixtral", "messages": []}, "messages"),
    ({"model": "mixtral"}, "messages"),
    ({"messages": [USER]}, "model"),
    ({"model": "mixtral", "prompt": [1, 2, 3]}, "prompt[0]"),
]
BAD_RESPONSES = [
    ({"model": "mixtral", "input": "hi", "tools": ["x"]}, "tools[0]"),
    ({"model": "mixtral", "input": "hi", "text": "x"}, "text"),
    ({"model": "mixtral", "input": [{"type": "reasoning"}]}, "input[0].type"),
    ({"model": "mixtral", "input": 5}, "input"),
    ({"model": "mixtral", "input": []}, "input"),  # was a 502 (the backend got no messages): found by the fuzz suite
    ({"model": "mixtral", "input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
]


@pytest.mark.parametrize("body,param", BAD + BAD_RESPONSES, ids=[p for _, p in BAD + BAD_RESPONSES])
def test_malformed_fields_are_400_naming_the_field(gw, body, param):
    path = "/v1/responses" if "input" in body else "/v1/completions" if "prompt" in body else "/v1/chat/completions"
    r = post(gw, path, body)
    assert r.status_code == 400, r.text[:300]
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error", err


def test_deep_nesting_is_refused_with_400(gw):
    deep = '{"a":' * 1000 + "1" + "}" * 1000  # written by hand: json.dumps itself recurses
    for path, head in (
        ("/v1/chat/completions", '{"model":"mixtral","messages":[{"role":"user","content":"hi"}]'),
        ("/v1/responses", '{"model":"mixtral","input":"hi"'),
    ):
        r = httpx.post(
            gw.url + path,
            headers={**HEADERS, "content-type": "application/json"},
            timeout=30,
            content=(head + ',"metadata":' + deep + "}").encode(),
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep", r.text[:200]


# --- telemetry -------------------------------------------------------------------------------------------
def test_unknown_models_are_404_and_never_a_metric_label(gw):
    names = [f"probe-{uuid.uuid4().hex}" for _ in range(30)] + [EMAIL]
    for name in names:
        r = post(gw, "/v1/chat/completions", chat(USER, model=name))
        assert r.status_code == 404 and r.json()["error"]["param"] == "model"
        assert EMAIL not in r.text
    text = httpx.get(gw.url + "/metrics", timeout=5).text
    assert not any(n in text for n in names)


def test_a_request_id_that_is_not_an_id_is_replaced_and_only_its_hash_kept(gw):
    from procs import ROOT  # noqa: F401  (keeps the import list honest for readers)

    r = post(gw, "/v1/chat/completions", chat(USER), headers={"x-request-id": EMAIL})
    assert r.status_code == 200
    assert r.headers["x-request-id"] != EMAIL and len(r.headers["x-request-id"]) == 32
    r = post(gw, "/v1/chat/completions", chat(USER), headers={"x-request-id": "trace-7f3a9c21"})
    assert r.headers["x-request-id"] == "trace-7f3a9c21"
    assert EMAIL not in httpx.get(gw.url + "/metrics", timeout=5).text


# --- streamed Responses are accounted like chat streams ------------------------------------------------
def test_streamed_responses_are_accounted(gw, redis_server):
    import orjson
    import redis

    before = gw.metric("mixguard_tokens_total", direction="out")
    rid = "resp-stream-" + uuid.uuid4().hex[:12]
    with httpx.stream(
        "POST",
        gw.url + "/v1/responses",
        headers={**HEADERS, "x-request-id": rid},
        timeout=30,
        json={"model": "mixtral", "input": "count to three please", "stream": True},
    ) as r:
        events = [line for line in r.iter_lines() if line.startswith("data:")]
    assert r.status_code == 200
    done = json.loads(events[-1][5:])
    assert done["type"] == "response.completed"
    assert done["response"]["usage"]["output_tokens"] > 0  # the usage chunk reached the Responses stream
    deadline = time.time() + 5
    while gw.metric("mixguard_tokens_total", direction="out") <= before and time.time() < deadline:
        time.sleep(0.05)
    assert gw.metric("mixguard_tokens_total", direction="out") > before  # token metrics count it
    r = redis.Redis.from_url(redis_server.url)
    deadline = time.time() + 10
    record = None
    while record is None and time.time() < deadline:
        record = next(
            (orjson.loads(f[b"r"]) for _, f in r.xrange("mixguard:audit") if orjson.loads(f[b"r"])["id"] == rid), None
        )
        time.sleep(0.05)
    assert record is not None, "no audit record"
    assert record["usage"]["completion_tokens"] > 0 and record["latency_ms"]["ttft"] is not None
