"""PII guardrail end to end: the openai client → gateway → stand-in (echo), real Presidio, real Redis."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import openai
import pytest
import redis

from procs import ROOT, Gateway, Standin, gateway_config

POLICIES = {
    "norestore.yaml": """
name: norestore
pii:
  entities: {PERSON: {action: mask, threshold: 0.6}, PHONE_NUMBER: {action: mask, threshold: 0.3}}
  restore: false
  output_action: allow
""",
    "strict.yaml": """
name: strict
pii:
  entities: {EMAIL_ADDRESS: block, PERSON: redact, CREDIT_CARD: hash}
""",
    "custom.yaml": """
name: custom
pii:
  restore: false
  output_action: allow
  recognizers:
    - name: employee_id
      entity: EMPLOYEE_ID
      patterns: [{name: emp, regex: "EMP-\\\\d{6}", score: 0.9}]
    - name: codenames
      entity: PROJECT_CODENAME
      deny_list: [Bluebird, Nightjar]
      action: redact
""",
    "failclosed.yaml": """
name: failclosed
pii:
  analyze_timeout_s: 0.000001
""",
    "names.yaml": """
name: names
pii:
  output_entities: [EMAIL_ADDRESS, PERSON, LOCATION]
""",
}

KEYS = [
    ("sk-norestore", "norestore"),
    ("sk-strict", "strict"),
    ("sk-custom", "custom"),
    ("sk-failclosed", "failclosed"),
    ("sk-names", "names"),
]
PII_VALUES = ["Maria Gonzalez", "maria.gonzalez@example.com", "4111 1111 1111 1111", "(212) 555-0143"]
PROMPT = (
    "Hi, I am Maria Gonzalez. Write to maria.gonzalez@example.com or call (212) 555-0143; "
    "my card is 4111 1111 1111 1111."
)


def _pii_gateway(params: dict, redis_url: str) -> Gateway:
    """A gateway with this module's policies and keys in front of `params`' backend."""
    pdir = Path(tempfile.mkdtemp(prefix="mg-policies-"))
    shutil.copy(ROOT / "policies" / "default.yaml", pdir / "default.yaml")
    for name, text in POLICIES.items():
        (pdir / name).write_text(text)
    cfg = gateway_config(
        params, redis_url=redis_url, extra={"policies_dir": str(pdir), "pii": {"vault_ttl_seconds": 3}}
    )
    cfg["mixguard"]["api_keys"] += [{"key": k, "app": p, "policy": p, "id": f"key-{p}"} for k, p in KEYS]
    return Gateway(cfg, env={"MIXGUARD_VAULT_KEY": "test-vault-passphrase"})


@pytest.fixture(scope="module")
def pii_gateway(primary, redis_server):
    g = _pii_gateway(primary.params(), redis_server.url)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def standin_pair(pii_gateway, primary, redis_server):
    """(gateway, stand-in) for tests that read what the backend received or script its answer:
    the module's pair when the primary is a stand-in, else a stand-in of their own (real-SGLang mode)."""
    if primary.standin:
        yield pii_gateway, primary.standin
        return
    s = Standin()
    g = _pii_gateway({"model": "openai/mixtral", "api_base": f"{s.url}/v1"}, redis_server.url)
    yield g, s
    g.stop()
    s.stop()


def _client(g: Gateway, key: str = Gateway.KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0, timeout=60)


def _seen_by_backend(primary) -> str:
    return json.dumps(primary.standin.last_request()) if primary.standin else ""


def test_backend_receives_no_pii_and_caller_gets_originals(pii_gateway, primary):
    resp = _client(pii_gateway).chat.completions.create(
        model="mixtral",
        messages=[
            {"role": "system", "content": "Assist Maria Gonzalez politely."},
            {"role": "user", "content": PROMPT},
        ],
    )
    if primary.standin:
        seen = _seen_by_backend(primary)
        for v in PII_VALUES:
            assert v not in seen
        assert "<PERSON_1>" in seen and "<EMAIL_ADDRESS_1>" in seen
        assert resp.choices[0].message.content == PROMPT  # echo of the masked text, restored


def test_masked_text_is_what_the_model_sees_without_restore(pii_gateway, primary):
    out = (
        _client(pii_gateway, "sk-norestore")
        .chat.completions.create(model="mixtral", messages=[{"role": "user", "content": PROMPT}])
        .choices[0]
        .message.content
    )
    if primary.echo:
        for v in PII_VALUES:
            assert v not in out
        assert "<PERSON_1>" in out and "<PHONE_NUMBER_1>" in out


def test_every_part_of_the_request_is_scanned(standin_pair):
    pii_gateway, standin = standin_pair
    tools = [{"type": "function", "function": {"name": "send", "parameters": {"type": "object"}}}]
    _client(pii_gateway).chat.completions.create(
        model="mixtral",
        tools=tools,
        tool_choice="none",
        messages=[
            {"role": "system", "content": "Customer: Maria Gonzalez"},
            {"role": "user", "content": [{"type": "text", "text": "mail maria.gonzalez@example.com"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {
                            "name": "send",
                            "arguments": json.dumps(
                                {"to": "maria.gonzalez@example.com", "card": "4111 1111 1111 1111"}
                            ),
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sent to (212) 555-0143"},
            {"role": "user", "content": "thanks"},
        ],
    )
    seen = json.dumps(standin.last_request())
    for v in PII_VALUES:
        assert v not in seen
    assert "<PERSON_1>" in seen and "<CREDIT_CARD_1>" in seen  # the request did reach the backend, masked
    _client(pii_gateway).completions.create(
        model="mixtral", prompt="Letter for Maria Gonzalez at maria.gonzalez@example.com"
    )
    seen = json.dumps(standin.last_request())
    assert "maria.gonzalez@example.com" not in seen and "<EMAIL_ADDRESS_1>" in seen


def test_streamed_placeholder_split_across_chunks_is_restored(pii_gateway, primary):
    if primary.standin:  # a model's pace: the answer's names are analysed between its tokens
        primary.standin.configure(token_ms=15.0)
    try:
        chunks = list(
            _client(pii_gateway).chat.completions.create(
                model="mixtral", stream=True, messages=[{"role": "user", "content": PROMPT}]
            )
        )
    finally:
        if primary.standin:
            primary.standin.configure(token_ms=0.0)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    if primary.echo:
        assert "".join(pieces) == PROMPT
        assert len(pieces) > 5  # streamed in pieces, not buffered whole
        # the stand-in streams one token per chunk, so '<PERSON_1>' arrived split over several chunks
        assert all("<PERSON" not in p and "<EMAIL" not in p for p in pieces)


def test_responses_api_masks_and_restores(pii_gateway, primary):
    r = _client(pii_gateway).responses.create(model="mixtral", input=PROMPT)
    if primary.echo:
        assert r.output_text == PROMPT
        assert "maria.gonzalez@example.com" not in _seen_by_backend(primary)


def test_same_value_same_placeholder_across_turns_keeps_prefix_cache_hot(pii_gateway, primary):
    c = _client(pii_gateway, "sk-norestore")
    conv = {"x-conversation-id": f"conv-{time.time()}"}
    turn1 = [{"role": "user", "content": "My name is Maria Gonzalez, call (212) 555-0143. " + "Context. " * 40}]
    a1 = c.chat.completions.create(model="mixtral", messages=turn1, extra_headers=conv)
    masked1 = a1.choices[0].message.content
    turn2 = turn1 + [
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Again: Maria Gonzalez and Peter Novak."},
    ]
    a2 = c.chat.completions.create(model="mixtral", messages=turn2, extra_headers=conv)
    if primary.echo:
        assert "<PERSON_1>" in masked1 and a2.choices[0].message.content.startswith("Again: <PERSON_1> and <PERSON_2>")
        assert a2.usage.prompt_tokens_details.cached_tokens >= a1.usage.prompt_tokens - 2


def test_spoofed_placeholder_never_returns_another_conversations_value(pii_gateway, primary):
    c = _client(pii_gateway)
    c.chat.completions.create(
        model="mixtral",
        messages=[{"role": "user", "content": "I am Maria Gonzalez."}],
        extra_headers={"x-conversation-id": "victim"},
    )
    for key, conv in ((Gateway.KEY, "attacker"), ("sk-other-app-key", "victim")):
        out = (
            _client(pii_gateway, key)
            .chat.completions.create(
                model="mixtral",
                messages=[{"role": "user", "content": "Tell me <PERSON_1> and <EMAIL_ADDRESS_1>"}],
                extra_headers={"x-conversation-id": conv},
            )
            .choices[0]
            .message.content
        )
        assert "Maria" not in out
        if primary.echo:
            assert out == "Tell me <PERSON_1> and <EMAIL_ADDRESS_1>"  # the caller's own text, as typed
    if primary.standin:
        assert "<LITERAL_1>" in _seen_by_backend(primary)


def test_block_action_refuses_without_calling_a_model(pii_gateway, primary):
    before = primary.standin.metric("sglang:num_requests_total") if primary.standin else None
    with pytest.raises(openai.BadRequestError) as exc:
        _client(pii_gateway, "sk-strict").chat.completions.create(
            model="mixtral", messages=[{"role": "user", "content": "mail me at maria.gonzalez@example.com"}]
        )
    assert exc.value.body["code"] == "pii_blocked" and "pii.EMAIL_ADDRESS" in exc.value.body["message"]
    assert "maria.gonzalez@example.com" not in exc.value.body["message"]
    if primary.standin:
        assert primary.standin.metric("sglang:num_requests_total") == before


def test_redact_and_hash_actions(pii_gateway, primary):
    out = (
        _client(pii_gateway, "sk-strict")
        .chat.completions.create(
            model="mixtral", messages=[{"role": "user", "content": "Maria Gonzalez paid with 4111 1111 1111 1111"}]
        )
        .choices[0]
        .message.content
    )
    if primary.echo:
        assert "[REDACTED:PERSON]" in out and "[HASH:" in out and "4111" not in out


def test_custom_recognizers_from_yaml(pii_gateway, primary):
    out = (
        _client(pii_gateway, "sk-custom")
        .chat.completions.create(
            model="mixtral", messages=[{"role": "user", "content": "Employee EMP-123456 works on Bluebird."}]
        )
        .choices[0]
        .message.content
    )
    if primary.echo:
        assert out == "Employee <EMPLOYEE_ID_1> works on [REDACTED:PROJECT_CODENAME]."


def test_pii_the_model_invents_is_redacted_in_output(standin_pair):
    pii_gateway, standin = standin_pair
    standin.configure(replies=["Contact bob.smith@example.org or 4111-1111-1111-1111 for details."])
    try:
        c = _client(pii_gateway)
        whole = (
            c.chat.completions.create(model="mixtral", messages=[{"role": "user", "content": "who?"}])
            .choices[0]
            .message.content
        )
        streamed = "".join(
            ch.choices[0].delta.content or ""
            for ch in c.chat.completions.create(
                model="mixtral", stream=True, messages=[{"role": "user", "content": "who?"}]
            )
            if ch.choices
        )
    finally:
        standin.configure(replies=[])
    for out in (whole, streamed):
        assert "bob.smith@example.org" not in out and "4111-1111-1111-1111" not in out
        assert "[REDACTED:EMAIL_ADDRESS]" in out and "[REDACTED:CREDIT_CARD]" in out


def test_a_policy_can_keep_the_model_from_inventing_names_and_places(standin_pair):
    """output_entities: PERSON and LOCATION: names the model made up are redacted, streamed too,
    while the caller's own (restored) name comes back."""
    pii_gateway, standin = standin_pair
    standin.configure(
        replies=["<PERSON_1>, ask Zsófia Kertész, who moved here from Portugal, or mail z.k@example.net."]
    )
    msgs = [{"role": "user", "content": "Hi, I am Maria Gonzalez. Whom should I ask?"}]
    try:
        c = _client(pii_gateway, "sk-names")
        whole = c.chat.completions.create(model="mixtral", messages=msgs).choices[0].message.content
        streamed = "".join(
            ch.choices[0].delta.content or ""
            for ch in c.chat.completions.create(model="mixtral", stream=True, messages=msgs)
            if ch.choices
        )
        default = (
            _client(pii_gateway).chat.completions.create(model="mixtral", messages=msgs).choices[0].message.content
        )
    finally:
        standin.configure(replies=[])
    for out in (whole, streamed):
        assert out.startswith("Maria Gonzalez, ask ")  # the caller's own value, restored
        assert "Zsófia" not in out and "Kertész" not in out and "Portugal" not in out and "z.k@example.net" not in out
        assert "[REDACTED:PERSON]" in out and "[REDACTED:LOCATION]" in out and "[REDACTED:EMAIL_ADDRESS]" in out
    # the default policy: names and identifiers, not places (a country or city alone identifies no one)
    assert "Zsófia" not in default and "[REDACTED:PERSON]" in default and "[REDACTED:EMAIL_ADDRESS]" in default
    assert "Portugal" in default and default.startswith("Maria Gonzalez, ask ")


@pytest.mark.parametrize("route", ["chat", "chat-stream", "completions", "responses"])
def test_analyzer_failure_fails_closed_on_every_endpoint(pii_gateway, primary, route):
    before = primary.standin.metric("sglang:num_requests_total") if primary.standin else None
    hdr = {"Authorization": "Bearer sk-failclosed"}
    prompt = f"{PROMPT} (fresh text {time.time_ns()}: no cached analysis)"
    url, body = {
        "chat": ("/v1/chat/completions", {"model": "mixtral", "messages": [{"role": "user", "content": prompt}]}),
        "chat-stream": (
            "/v1/chat/completions",
            {"model": "mixtral", "stream": True, "messages": [{"role": "user", "content": prompt}]},
        ),
        "completions": ("/v1/completions", {"model": "mixtral", "prompt": prompt}),
        "responses": ("/v1/responses", {"model": "mixtral", "input": prompt}),
    }[route]
    r = httpx.post(pii_gateway.url + url, json=body, headers=hdr, timeout=30)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "guardrail_unavailable"
    assert all(v not in r.text for v in PII_VALUES)
    if primary.standin:
        assert primary.standin.metric("sglang:num_requests_total") == before


def test_vault_entries_are_encrypted_scoped_and_expire(pii_gateway, redis_server):
    conv = f"ttl-{time.time()}"
    _client(pii_gateway).chat.completions.create(
        model="mixtral",
        messages=[{"role": "user", "content": "I am Maria Gonzalez"}],
        extra_headers={"x-conversation-id": conv},
    )
    r = redis.Redis.from_url(redis_server.url)
    scope = f"mixguard:vault:test-key:{hashlib.sha256(conv.encode()).hexdigest()[:24]}"
    keys = list(r.scan_iter(scope))
    assert keys == [scope.encode()]
    blob = b"".join(k + b"".join(v for kv in r.hgetall(k).items() for v in kv) for k in keys)
    assert b"Maria" not in blob  # values encrypted, lookups by keyed hash
    assert all(0 < r.ttl(k) <= 3 for k in keys)
    time.sleep(3.5)
    assert not r.exists(scope)


def test_pii_values_never_reach_gateway_logs(pii_gateway):
    out = pii_gateway.output()
    assert all(v not in out for v in PII_VALUES)


def test_restore_can_be_turned_off_for_hosted_fallbacks(primary, redis_server):
    """A policy with restore_on_fallback: false leaves placeholders in answers from hosted providers."""
    faulty, hosted = Standin("--error-rate", "1.0"), Standin()
    pdir = Path(tempfile.mkdtemp(prefix="mg-policies-"))
    shutil.copy(ROOT / "policies" / "default.yaml", pdir / "default.yaml")
    (pdir / "onprem.yaml").write_text("name: onprem\npii:\n  restore_on_fallback: false\n  output_action: allow\n")
    cfg = gateway_config(
        {"model": "openai/mixtral", "api_base": f"{faulty.url}/v1"},
        fallbacks=[
            {
                "id": "mistral-hosted",
                "params": {"model": "mistral/open-mixtral-8x7b", "api_base": f"{hosted.url}/v1", "api_key": "k"},
            }
        ],
        redis_url=redis_server.url,
        extra={"policies_dir": str(pdir)},
    )
    cfg["mixguard"]["api_keys"].append({"key": "sk-onprem", "app": "onprem", "policy": "onprem", "id": "key-onprem"})
    g = Gateway(cfg)
    try:
        msgs = [{"role": "user", "content": "I am Maria Gonzalez"}]
        raw = _client(g, "sk-onprem").chat.completions.with_raw_response.create(model="mixtral", messages=msgs)
        assert raw.headers["x-mixguard-backend"] == "mistral-hosted"
        assert raw.parse().choices[0].message.content == "I am <PERSON_1>"
        restored = _client(g).chat.completions.create(model="mixtral", messages=msgs).choices[0].message.content
        assert restored == "I am Maria Gonzalez"  # the default policy restores answers from fallbacks
    finally:
        g.stop()
        faulty.stop()
        hosted.stop()


def test_the_answer_is_analysed_after_responding_so_the_next_turn_only_pays_for_its_new_message(redis_server):
    """Turn 2 sends turn 1's answer back as history: it must already be in the analysis cache."""
    s = Standin()
    s.configure(replies=["Certainly, Ms Okonkwo: your parcel to Lagos leaves on Monday.", "Anything else?"])
    g = Gateway(gateway_config({"model": "openai/mixtral", "api_base": f"{s.url}/v1"}, redis_url=redis_server.url))
    try:
        c = openai.OpenAI(base_url=g.url + "/v1", api_key=Gateway.KEY, max_retries=0, timeout=30)
        first = {"role": "user", "content": "Hi, I am Adaeze Okonkwo. Where is my parcel to Lagos?"}
        answer = c.chat.completions.create(model="mixtral", messages=[first]).choices[0].message.content
        assert "Okonkwo" in answer  # restored for the caller
        deadline = time.time() + 10
        analyzed = g.metric("mixguard_pii_analysis_total", source="analyzed")
        while time.time() < deadline:  # the background analysis of the answer settles
            time.sleep(0.2)
            now = g.metric("mixguard_pii_analysis_total", source="analyzed")
            if now == analyzed and now >= 2:
                break
            analyzed = now
        # turn 1: the user message, the answer's names (output scan), then (after responding) the answer as the
        # next turn will send it
        assert analyzed == 3
        c.chat.completions.create(
            model="mixtral",
            messages=[
                first,
                {"role": "assistant", "content": answer},
                {"role": "user", "content": "Can it go faster?"},
            ],
        )
        time.sleep(0.5)
        # Turn 2 analysed only its new user message (+ its own answer, twice): the history was cached.
        assert g.metric("mixguard_pii_analysis_total", source="analyzed") == analyzed + 3
        assert g.metric("mixguard_pii_analysis_total", source="memory") >= 2
    finally:
        g.stop()
        s.stop()


def test_a_long_prompt_is_analysed_in_parallel_chunks_and_nothing_leaks_at_the_cuts(pii_gateway, primary):
    """Texts over long_text_chars go to worker processes in ~2,000-character chunks that overlap,
    so a value on a cut is still found whole; every value is masked and restored."""
    filler = "The quarterly numbers look fine and the team keeps shipping on schedule. "
    values = ["grace.hopper@example.com", "Nathaniel Brightwater", "+44 20 7946 0958", "4111 1111 1111 1111"]
    text, placed = "", []
    for i in range(12):  # ~12,000 characters, a value every ~1,000, some right at chunk cuts
        text += filler * 13
        text = text[: 1000 * (i + 1) - 8]  # land the value across the 1,000/2,000 boundaries
        v = values[i % len(values)]
        text += f" {v} "
        placed.append(v)
    assert len(text) > 11_000
    resp = _client(pii_gateway).chat.completions.create(model="mixtral", messages=[{"role": "user", "content": text}])
    seen = _seen_by_backend(primary)
    for v in values:
        assert v not in seen
    if primary.echo:
        assert seen.count("<EMAIL_ADDRESS_1>") == placed.count(values[0])
        assert resp.choices[0].message.content == text


def test_a_custom_recognizer_added_by_a_policy_edit_works_after_reload(redis_server, tmp_path):
    """Presidio's registry is rebuilt when reloaded policies ask for other recognizers."""
    policy = "name: tickets\npii:\n  restore: false\n  output_action: allow\n"
    (tmp_path / "tickets.yaml").write_text(policy)
    s = Standin()
    cfg = gateway_config(
        {"model": "openai/mixtral", "api_base": f"{s.url}/v1"},
        redis_url=redis_server.url,
        extra={"policies_dir": str(tmp_path), "policy_reload_interval_s": 0},
    )
    cfg["mixguard"]["api_keys"].append({"key": "sk-tickets", "app": "t", "policy": "tickets"})
    g = Gateway(cfg)
    try:

        def ask() -> str:
            return (
                _client(g, "sk-tickets")
                .chat.completions.create(
                    model="mixtral", messages=[{"role": "user", "content": "Ticket KX-4471-Q is about the login page."}]
                )
                .choices[0]
                .message.content
            )

        assert "KX-4471-Q" in ask()
        (tmp_path / "tickets.yaml").write_text(
            policy + "  recognizers:\n    - name: tickets\n      entity: TICKET_ID\n"
            "      patterns: [{name: t, regex: 'KX-\\d{4}-[A-Z]', score: 0.9}]\n"
            "      action: redact\n"
        )
        r = httpx.post(
            g.url + "/admin/policies/reload", headers={"Authorization": f"Bearer {Gateway.ADMIN}"}, timeout=60
        )
        assert r.status_code == 200 and r.json()["loaded"] == ["tickets"], r.text
        out = ask()
        assert "KX-4471-Q" not in out and "[REDACTED:TICKET_ID]" in out
        assert "KX-4471-Q" not in json.dumps(s.last_request())
    finally:
        g.stop()
        s.stop()


@pytest.mark.redis_server
def test_vault_sends_known_values_by_digest_and_recovers_when_redis_lost_them(redis_server):
    """Later turns send values the process already placed by digest only; if Redis lost the
    scope meanwhile (restart, flush), the values are sent again and restore still works."""
    import asyncio

    import redis.asyncio as aioredis
    from cryptography.fernet import Fernet

    from guardrails.pii.vault import Vault

    async def run() -> None:
        client = aioredis.from_url(redis_server.url)
        vault = Vault(client, f"mg-test-{time.time_ns()}:", Fernet.generate_key(), ttl_seconds=60)
        items = [("PERSON", "Zsófia Kertész"), ("EMAIL_ADDRESS", "z.k@example.net")]
        first = await vault.placeholders("key", "conv", items)
        again = await vault.placeholders("key", "conv", items + [("PERSON", "Ola Nordmann")])
        assert again[:2] == first and again[2] == "<PERSON_2>"
        await client.delete(vault.scope_key("key", "conv"))  # only this test's own key
        after = await vault.placeholders("key", "conv", items)
        assert sorted(after) == sorted(first)  # numbered afresh, same shape
        restored = await vault.originals("key", "conv", after)
        assert restored == {after[0]: "Zsófia Kertész", after[1]: "z.k@example.net"}
        await client.delete(vault.scope_key("key", "conv"))
        await client.aclose()

    asyncio.run(run())
