"""Names and addresses the model writes in its answer (issue 14, item 6), end to end: the openai
client → gateway (real Presidio and spaCy) → stand-in whose scripted answers play a model that
invents people or repeats them from context. Handled per `output_action`, whole and streamed; the
caller's own values come back; the audit record keeps no invented name."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path

import openai
import pytest
import redis
import yaml

from procs import ROOT, Gateway, RedisProc, Standin, gateway_config

INVENTED = "Ingrid Bergqvist"
ADDRESS = "14 Harbour Lane"
ANSWER = (
    f"Thanks <PERSON_1>. Your case went to {INVENTED}, our agent in Portugal; the courier drops it "
    f"at {ADDRESS} tomorrow. Mixguard support wishes you a good day."
)
PROMPT = "Hi, I am Maria Gonzalez. Where is my parcel?"
POLICIES = {
    "masked": {"name": "masked", "pii": {"output_action": "mask"}},
    "kept": {"name": "kept", "pii": {"output_action": "allow"}},
}


@pytest.fixture(scope="module")
def setup():
    rp = RedisProc().start()
    s = Standin()
    d = Path(tempfile.mkdtemp(prefix="mg-answer-pii-"))
    default = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    default["audit"] = {"content": "full"}
    (d / "default.yaml").write_text(yaml.safe_dump(default))
    for name, body in POLICIES.items():
        (d / f"{name}.yaml").write_text(yaml.safe_dump(body))
    cfg = gateway_config(
        {"model": "openai/mixtral", "api_base": f"{s.url}/v1"}, redis_url=rp.url, extra={"policies_dir": str(d)}
    )
    cfg["mixguard"]["api_keys"] += [{"key": f"sk-{n}", "app": n, "policy": n, "id": f"key-{n}"} for n in POLICIES]
    g = Gateway(cfg, env={"MIXGUARD_VAULT_KEY": "answer-pii-test", "MIXGUARD_AUDIT_KEY": "k"})
    yield g, s, rp
    g.stop()
    s.stop()
    rp.stop()


def _ask(g: Gateway, key: str = Gateway.KEY, stream: bool = False, request_id: str = "") -> str:
    c = openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0, timeout=60)
    msgs = [{"role": "user", "content": PROMPT}]
    hdr = {"x-request-id": request_id} if request_id else {}
    if not stream:
        return c.chat.completions.create(model="mixtral", messages=msgs, extra_headers=hdr).choices[0].message.content
    return "".join(
        ch.choices[0].delta.content or ""
        for ch in c.chat.completions.create(model="mixtral", messages=msgs, stream=True, extra_headers=hdr)
        if ch.choices
    )


@pytest.mark.parametrize("token_ms", [0.0, 8.0])
def test_default_policy_redacts_invented_names_and_addresses_whole_and_streamed(setup, token_ms):
    g, s, _ = setup
    s.configure(replies=[ANSWER], token_ms=token_ms)
    try:
        whole, streamed = _ask(g), _ask(g, stream=True)
    finally:
        s.configure(replies=[], token_ms=0.0)
    for out in (whole, streamed):
        assert out.startswith("Thanks Maria Gonzalez.")  # the caller's placeholder, restored
        assert "Ingrid" not in out and "Bergqvist" not in out and "Harbour" not in out
        assert "[REDACTED:PERSON]" in out and "[REDACTED:STREET_ADDRESS]" in out
        assert "Portugal" in out and "Mixguard support" in out  # a country identifies no one; the allow list
    assert whole == streamed


def test_output_action_mask_and_allow(setup):
    g, s, _ = setup
    s.configure(replies=[ANSWER])
    try:
        masked, kept = _ask(g, "sk-masked", stream=True), _ask(g, "sk-kept")
    finally:
        s.configure(replies=[])
    assert "<PERSON>" in masked and INVENTED not in masked and masked.startswith("Thanks Maria Gonzalez.")
    assert INVENTED in kept and ADDRESS in kept and kept.startswith("Thanks Maria Gonzalez.")


def test_the_model_repeating_the_callers_own_name_is_not_redacted(setup):
    g, s, _ = setup
    s.configure(replies=["Of course, Ms Gonzalez, and Maria Gonzalez is on the parcel too."])
    try:
        out = _ask(g, stream=True)
    finally:
        s.configure(replies=[])
    assert out == "Of course, Ms Gonzalez, and Maria Gonzalez is on the parcel too."


def test_the_audit_record_keeps_no_invented_name(setup):
    g, s, rp = setup
    rid = uuid.uuid4().hex
    s.configure(replies=[ANSWER])
    try:
        _ask(g, stream=True, request_id=rid)
    finally:
        s.configure(replies=[])
    r = redis.Redis.from_url(rp.url)
    record = None
    deadline = time.time() + 10
    while record is None and time.time() < deadline:
        for _, f in r.xrange("mixguard:audit"):
            rec = json.loads(f[b"r"])
            if rec.get("id") == rid:
                record = rec
        time.sleep(0.05)
    assert record is not None
    blob = json.dumps(record)
    assert "Thanks <PERSON_1>" in blob  # the answer is recorded, masked
    assert "Bergqvist" not in blob and "Harbour" not in blob and "Maria" not in blob
    assert any(d.get("rule") == "pii.output.PERSON" for d in record.get("decisions", []))
