"""Code-aware PII masking end to end: the openai client → gateway (default policy) → stand-in,
real Presidio and spaCy, real Redis. Identifiers, stack traces and log lines reach the model as
written; people named in the prose around them, and identifiers such as e-mails inside the code,
are masked and restored."""

from __future__ import annotations

import json

import openai
import pytest

from procs import Gateway, Standin, gateway_config

CODE_QUESTION = (
    "Ana Lucía Quispe asked me why this raises. Can you explain?\n"
    "```python\n"
    "from typing import ParamSpec\n"
    "class Split(Base):\n"
    '    """Split a ledger.\n\n    Raises:\n        KeyError: if the owner is unknown.\n    """\n'
    '    def notify(self) -> None:\n        send(to="ana.quispe@example.pe")\n'
    "```\n"
    "`ParamSpec` and `Split()` come from our billing_core.ledger module."
)

TRACE_AND_LOG = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/worker.py", line 18, in Dispatch\n'
    "    Handler(order).run()\n"
    "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): refused\n"
    "2025-06-24 14:39:43,120 INFO app.worker: Started Worker Pool on Windows\n"
    "2025-06-24 14:39:44,002 WARNING app.worker: retrying in 5 s"
)


def _client(g: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=g.url + "/v1", api_key=Gateway.KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def standin():
    """A stand-in of this module's own, whatever the primary is: the assertions read what the
    backend received, which only a stand-in reports."""
    s = Standin()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gateway(redis_server, standin):
    g = Gateway(
        gateway_config({"model": "openai/mixtral", "api_base": f"{standin.url}/v1"}, redis_url=redis_server.url)
    )
    yield g
    g.stop()


def _seen(standin) -> str:
    return standin.last_request()["messages"][-1]["content"]


def test_identifiers_in_code_reach_the_model_while_people_and_emails_are_masked(gateway, standin):
    answer = (
        _client(gateway)
        .chat.completions.create(model="mixtral", messages=[{"role": "user", "content": CODE_QUESTION}])
        .choices[0]
        .message.content
    )
    seen = _seen(standin)
    for identifier in ("ParamSpec", "class Split(Base)", "Raises:", "KeyError", "`Split()`", "billing_core.ledger"):
        assert identifier in seen
    assert "Ana Lucía Quispe" not in seen and "<PERSON_1>" in seen  # the person in the prose
    assert "ana.quispe@example.pe" not in seen and "<EMAIL_ADDRESS_1>" in seen  # structured, in code too
    assert answer == CODE_QUESTION  # the stand-in echoes: every masked value restored exactly


def test_stack_traces_and_log_lines_reach_the_model_unchanged(gateway, standin):
    answer = (
        _client(gateway)
        .chat.completions.create(model="mixtral", messages=[{"role": "user", "content": TRACE_AND_LOG}])
        .choices[0]
        .message.content
    )
    assert _seen(standin) == TRACE_AND_LOG  # no frame name, timestamp or loopback address masked
    assert answer == TRACE_AND_LOG  # and the answer is not redacted for "inventing" them


def test_a_cue_in_prose_still_masks_a_name_that_also_appears_in_code(gateway, standin):
    prompt = "My name is Fenwick Oduya.\n```\nowner = Fenwick\n```"
    _client(gateway).chat.completions.create(model="mixtral", messages=[{"role": "user", "content": prompt}])
    seen = json.dumps(_seen(standin))
    assert "Fenwick" not in seen and "Oduya" not in seen  # found by its cue, masked wherever it recurs


def test_nationality_alone_is_not_masked_by_default(gateway, standin):
    from policies.store import PolicyStore
    from procs import ROOT

    assert PolicyStore(ROOT / "policies").get("default").policy.pii.rule("NRP").action == "allow"
    prompt = "Our German and Brazilian customers ask for invoices in their language; Ingrid Solberg leads it."
    _client(gateway).chat.completions.create(model="mixtral", messages=[{"role": "user", "content": prompt}])
    seen = _seen(standin)
    assert "German" in seen and "Brazilian" in seen
    assert "Ingrid Solberg" not in seen
