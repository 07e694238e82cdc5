"""Fuzzing the three endpoints over HTTP: no body a client can send makes the gateway fail or leak.

Hypothesis builds request bodies for /v1/chat/completions, /v1/completions and /v1/responses that
are mostly well formed (so they pass the shape check and reach the stand-in backend), plants an
e-mail address (`fz<6 letters>@example.org`, sometimes with an invisible or look-alike character
the PII engine must see through) in one random text-bearing field, and then mutates some of them:
wrong types in random fields (booleans for ints, huge numbers, empty strings, lists, objects),
missing required fields, unknown fields (connection fields like `api_base` among them),
deep nesting. A second strategy sends raw bytes: invalid JSON, non-object JSON, truncated and
corrupted bodies, nesting far past any limit. About 230 requests in all, derandomized: the same
ones on every run (raise max_examples and drop derandomize locally to search further).

For every case:
  (a) the status is below 500, and a 4xx is OpenAI's error JSON without the planted address;
  (b) if the request reached the stand-in (told apart by a unique `seed`), the address is not in
      what the stand-in received, and no connection field is a top-level key of it.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import string
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from guardrails.request_shapes import CONNECTION_FIELDS, ROLES, is_connection_field
from procs import Gateway, Standin, gateway_config

HEADERS = {"Authorization": f"Bearer {Gateway.KEY}", "content-type": "application/json"}
PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions", "responses": "/v1/responses"}
REQUIRED = {"chat": ("model", "messages"), "completions": ("model", "prompt"), "responses": ("model", "input")}
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
    print_blob=True,
)
_SEEDS = itertools.count(7_000_001)  # one per request sent: tells its body apart at the stand-in


@pytest.fixture(scope="module")
def standin():
    s = Standin()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(standin, redis_server):
    g = Gateway(
        gateway_config({"model": "openai/mixtral", "api_base": f"{standin.url}/v1"}, redis_url=redis_server.url)
    )
    yield g
    g.stop()


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=30) as c:
        yield c


# --- text ------------------------------------------------------------------------------------------
#: Characters that have broken text handling somewhere: invisible format characters, fullwidth and
#: look-alike forms, combining marks, controls (NUL included), line separators, emoji sequences, the
#: gateway's own placeholder syntax and the model's chat-template tokens.
ODD = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u202e",
    "\u0301",
    "\uff21\uff22\uff23",
    "\uff20",
    "\uff0e",
    "\x00",
    "\x1b",
    "\x7f",
    "\t",
    "\r\n",
    "\u2028",
    "\u2029",
    "\U0001f642",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",
    "\u00df",
    "\u0130",
    "\U0010ffff",
    "\ufffd",
    "\\",
    '"',
    "'",
    "</s>",
    "[INST]",
    "<EMAIL_ADDRESS_1>",
    "<PERSON_2>",
    "{{x}}",
    "%s",
    "${x}",
    "\u0645\u0631\u062d\u0628\u0627",
    "\u65e5\u672c\u8a9e",
    "\ufdfa",
    "\ufb03",
    "\u2474",
    "\u33a1",
    "\u00bd",
    "\u2026",
    "\U000e0041",
    "\u0600",
    "e\u0301",
    "",
]
plain = st.text(alphabet=string.ascii_letters + string.digits + " .,:;-_/", max_size=10)
unicode_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=8)  # never a lone surrogate
texts = st.one_of(
    plain,
    unicode_text,
    st.lists(st.one_of(st.sampled_from(ODD), plain, unicode_text), max_size=4).map("".join),
)
emails = st.text(alphabet=string.ascii_lowercase, min_size=6, max_size=6).map(lambda s: f"fz{s}@example.org")
tool_names = st.one_of(
    st.sampled_from(["lookup", "get_weather", "a", "ns.tool:v1", "x-y_z"]),
    st.text(alphabet=string.ascii_letters + string.digits + "_.:-", min_size=1, max_size=20),
)
urls = st.sampled_from(
    ["https://img.example.net/cat.png", "data:image/png;base64,iVBORw0KGgo=", "http://127.0.0.1:9/x"]
)

#: Values that are the wrong type (or out of range) nearly everywhere they are put.
WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**40)]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 0.5, 2.5]),
    st.just(""),
    texts,
    st.lists(st.one_of(st.integers(), st.text(max_size=3), st.none(), st.booleans()), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
)
EXTRA_KEYS = st.one_of(
    st.sampled_from(sorted(CONNECTION_FIELDS)),
    st.sampled_from(
        [
            "litellm_foo",
            "aws_x",
            "azure_endpoint",
            "vertex_zone",
            "bedrock_arn",
            "sagemaker_x",
            "watsonx_url",
            "cache",
            "stream_options",
            "__proto__",
            "constructor",
            "",
            " ",
            "model ",
            "Messages",
            "sampling_params",
            "rid",
            "return_logprob",
            "lora_path",
            "input_ids",
        ]
    ),
    st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12),
    unicode_text,
)
EXTRA_VALUES = st.one_of(
    WEIRD,
    st.sampled_from(["http://127.0.0.1:9/v1", "sk-attacker", "openai", "PWNED-BY-MOCK"]),
    st.sampled_from(
        [
            {"X-Forwarded-Host": "evil"},
            {"api_base": "http://127.0.0.1:9/v1"},
            {"ttl": 10**30},
            {"ttl": 1e308, "no-cache": True},
            {"no-store": "x"},
            [{"model": "x"}],
        ]
    ),
)


# --- bodies with their text-bearing slots -----------------------------------------------------------------
Slot = tuple[Any, Any, str]  # (container, key, how): how in "str" | "args" (JSON text of an object) | "key"


class Builder:
    """Draws a body, remembering every place that carries text (where the address may go)."""

    def __init__(self, draw: Callable[..., Any]) -> None:
        self.draw = draw
        self.slots: list[Slot] = []

    def text(self, container: Any, key: Any, how: str = "str") -> Any:
        container[key] = self.draw(texts) if how != "args" else json.dumps({"q": self.draw(texts)})
        self.slots.append((container, key, how))
        return container[key]

    def free_json(self, max_depth: int = 3) -> Any:
        """A small JSON object with text in values and keys, sometimes nested deep (up to ~100 levels)."""
        obj: dict[str, Any] = {}
        for i in range(self.draw(st.integers(1, 3))):
            kind = self.draw(st.sampled_from(["text", "key", "num", "list", "nested", "deep"]))
            k = f"k{i}"
            if kind == "text":
                self.text(obj, k)
            elif kind == "key":
                obj[k] = self.draw(st.integers() | st.booleans() | st.none())
                self.slots.append((obj, k, "key"))
            elif kind == "num":
                obj[k] = self.draw(st.integers() | st.floats(allow_nan=False, allow_infinity=False))
            elif kind == "list":
                obj[k] = [self.draw(st.integers()), None]
                self.text(obj[k], 1)
            elif kind == "nested" and max_depth > 1:
                obj[k] = self.free_json(max_depth - 1)
            elif kind == "deep":
                obj[k] = self.deep()
        return obj

    def deep(self) -> Any:
        """Objects and arrays nested 1..100 deep with text at the bottom (the shape check stops at 64)."""
        depth = self.draw(st.one_of(st.integers(1, 8), st.integers(1, 100)))
        leaf: dict[str, Any] = {}
        self.text(leaf, "t")
        v: Any = leaf
        for i in range(depth):
            v = [v] if i % 2 else {"d": v}
        return v

    def schema(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for i in range(self.draw(st.integers(0, 2))):
            p = props[f"p{i}"] = {"type": self.draw(st.sampled_from(["string", "integer", "object"]))}
            if self.draw(st.booleans()):
                self.text(p, "description")
        s: dict[str, Any] = {"type": "object", "properties": props}
        if self.draw(st.integers(0, 4)) == 0:
            s["properties"]["nested"] = self.deep()
        if self.draw(st.booleans()):
            s["required"] = list(props)[:1]
        return s

    def maybe(self, body: dict[str, Any], key: str, fn: Callable[[], Any], p: int = 3) -> None:
        """Sets body[key] = fn() about one time in `p`."""
        if self.draw(st.integers(0, p - 1)) == 0:
            body[key] = fn()


def _sampling(draw: Callable[..., Any], endpoint: str) -> dict[str, Any]:
    common = {
        "temperature": st.floats(0, 2) | st.none(),
        "top_p": st.floats(0, 1),
        "n": st.integers(1, 3),
        "stream": st.sampled_from([False, False, False, True]),
    }
    if endpoint == "responses":
        extra = {
            "max_output_tokens": st.integers(1, 2**63 - 1),
            "parallel_tool_calls": st.booleans(),
            "store": st.booleans(),
            "truncation": st.sampled_from(["auto", "disabled"]),
            "include": st.lists(st.sampled_from(["message.output_text.logprobs", "x"]), max_size=2),
            "reasoning": st.fixed_dictionaries(
                {},
                optional={"effort": st.sampled_from(["low", "high"]), "summary": st.sampled_from(["auto", "concise"])},
            ),
            "top_logprobs": st.integers(0, 20),
        }
    else:
        extra = {
            "max_tokens": st.integers(1, 2**63 - 1),
            "frequency_penalty": st.floats(-2, 2),
            "presence_penalty": st.floats(-2, 2),
            "logit_bias": st.dictionaries(st.integers(0, 32000).map(str), st.floats(-100, 100), max_size=2),
            "top_k": st.integers(-1, 100),
            "min_p": st.floats(0, 1),
            "repetition_penalty": st.floats(0, 2),
            "min_tokens": st.integers(0, 4),
            "ignore_eos": st.booleans(),
            "stop_token_ids": st.lists(st.integers(0, 32000), max_size=2),
            "skip_special_tokens": st.booleans(),
            "regex": st.just("(yes|no)"),
            "stream_options": st.just({"include_usage": True}),
        }
        if endpoint == "chat":
            extra |= {
                "max_completion_tokens": st.integers(1, 10**6),
                "logprobs": st.booleans(),
                "top_logprobs": st.integers(0, 20),
                "parallel_tool_calls": st.booleans(),
                "reasoning_effort": st.sampled_from(["low", "high"]),
                "modalities": st.just(["text"]),
            }
        else:
            extra |= {"logprobs": st.integers(0, 5), "echo": st.booleans(), "best_of": st.integers(1, 3)}
    return draw(st.fixed_dictionaries({}, optional={**common, **extra}))


def _common_text(b: Builder, body: dict[str, Any], responses: bool = False) -> None:
    b.maybe(body, "user", lambda: b.text(body, "user"))
    b.maybe(body, "metadata", b.free_json)
    if b.draw(st.integers(0, 3)) == 0:
        if b.draw(st.booleans()):
            b.text(body, "stop")
        else:
            body["stop"] = [None] * b.draw(st.integers(1, 3))
            for i in range(len(body["stop"])):
                b.text(body["stop"], i)
    if not responses:  # SGLang's extras
        b.maybe(body, "chat_template_kwargs", b.free_json, 6)
        b.maybe(body, "ebnf", lambda: b.text(body, "ebnf"), 8)
        b.maybe(body, "json_schema", b.free_json, 8)
    b.maybe(body, "safety_identifier", lambda: b.text(body, "safety_identifier"), 8)


def _message(b: Builder) -> dict[str, Any]:
    draw = b.draw
    m: dict[str, Any] = {"role": draw(st.sampled_from(ROLES))}
    kind = draw(st.sampled_from(["str", "str", "parts", "none"]))
    if kind == "str":
        b.text(m, "content")
    elif kind == "parts":
        parts: list[dict[str, Any]] = []
        for _ in range(draw(st.integers(1, 3))):
            pk = draw(st.sampled_from(["text", "text", "refusal", "image", "image_str"]))
            if pk == "text":
                parts.append({"type": "text"})
                b.text(parts[-1], "text")
            elif pk == "refusal":
                parts.append({"type": "refusal"})
                b.text(parts[-1], "refusal")
            elif pk == "image":
                parts.append({"type": "image_url", "image_url": {"url": draw(urls), "detail": "low"}})
            else:
                parts.append({"type": "image_url", "image_url": draw(urls)})
        m["content"] = parts
    else:
        m["content"] = None
    b.maybe(m, "name", lambda: b.text(m, "name"), 4)
    if m["role"] == "assistant":
        if draw(st.booleans()):
            calls = []
            for j in range(draw(st.integers(1, 2))):
                fn: dict[str, Any] = {"name": draw(tool_names)}
                if draw(st.booleans()):
                    b.text(fn, "arguments", draw(st.sampled_from(["args", "str"])))
                else:
                    fn["arguments"] = b.free_json()
                call = {"id": f"call_{j}", "type": "function", "function": fn}
                if draw(st.booleans()):
                    call["index"] = j
                calls.append(call)
            m["tool_calls"] = calls
        b.maybe(m, "refusal", lambda: b.text(m, "refusal"), 6)
        b.maybe(m, "reasoning_content", lambda: b.text(m, "reasoning_content"), 6)
        if draw(st.integers(0, 7)) == 0:
            m["function_call"] = {"name": draw(tool_names)}
            b.text(m["function_call"], "arguments", "args")
    if m["role"] == "tool":
        b.maybe(m, "tool_call_id", lambda: b.text(m, "tool_call_id"), 2)
    return m


def _function_def(b: Builder) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": b.draw(tool_names)}
    b.maybe(fn, "description", lambda: b.text(fn, "description"), 2)
    b.maybe(fn, "parameters", b.schema, 2)
    if b.draw(st.integers(0, 3)) == 0:
        fn["strict"] = b.draw(st.booleans() | st.none())
    return fn


def _chat(b: Builder) -> dict[str, Any]:
    draw = b.draw
    body: dict[str, Any] = {"model": "mixtral", "messages": [_message(b) for _ in range(draw(st.integers(1, 4)))]}
    body |= _sampling(draw, "chat")
    if draw(st.booleans()):
        body["tools"] = [{"type": "function", "function": _function_def(b)} for _ in range(draw(st.integers(1, 2)))]
        body["tool_choice"] = draw(
            st.sampled_from(
                [
                    "auto",
                    "none",
                    "required",
                    {"type": "function", "function": {"name": body["tools"][0]["function"]["name"]}},
                ]
            )
        )
    if draw(st.integers(0, 7)) == 0:
        body["functions"] = [_function_def(b)]
    if draw(st.integers(0, 2)) == 0:
        kind = draw(st.sampled_from(["text", "json_object", "json_schema", "json_schema"]))
        rf: dict[str, Any] = {"type": kind}
        if kind == "json_schema":
            js: dict[str, Any] = {"name": "out", "schema": b.schema()}
            b.maybe(js, "description", lambda: b.text(js, "description"), 2)
            rf["json_schema"] = js
        body["response_format"] = rf
    if draw(st.integers(0, 7)) == 0:
        body["prediction"] = {"type": "content"}
        b.text(body["prediction"], "content")
    b.maybe(body, "web_search_options", b.free_json, 8)
    _common_text(b, body)
    return body


def _completions(b: Builder) -> dict[str, Any]:
    draw = b.draw
    body: dict[str, Any] = {"model": "mixtral"}
    if draw(st.booleans()):
        b.text(body, "prompt")
    else:
        body["prompt"] = [None] * draw(st.integers(1, 3))
        for i in range(len(body["prompt"])):
            b.text(body["prompt"], i)
    b.maybe(body, "suffix", lambda: b.text(body, "suffix"))
    body |= _sampling(draw, "completions")
    _common_text(b, body)
    return body


def _r_item(b: Builder) -> dict[str, Any]:
    draw = b.draw
    kind = draw(st.sampled_from(["message", "message", "implicit", "function_call", "function_call_output"]))
    if kind in ("message", "implicit"):
        item: dict[str, Any] = {"type": "message"} if kind == "message" else {}
        item["role"] = draw(st.sampled_from(["user", "assistant", "system", "developer"]))
        if draw(st.booleans()):
            b.text(item, "content")
        else:
            parts = []
            for _ in range(draw(st.integers(1, 3))):
                if draw(st.integers(0, 4)) == 0:
                    parts.append({"type": "input_image", "image_url": draw(urls)})
                else:
                    parts.append({"type": draw(st.sampled_from(["input_text", "output_text", "text"]))})
                    b.text(parts[-1], "text")
            item["content"] = parts
        return item
    if kind == "function_call":
        item = {"type": "function_call", "call_id": "c1", "name": draw(tool_names)}
        if draw(st.integers(0, 3)) == 0:
            b.text(item, "call_id")
        b.text(item, "arguments", draw(st.sampled_from(["args", "str"])))
        return item
    item = {"type": "function_call_output", "call_id": "c1"}
    if draw(st.booleans()):
        b.text(item, "output")
    else:
        item["output"] = b.free_json()
    return item


def _responses(b: Builder) -> dict[str, Any]:
    draw = b.draw
    body: dict[str, Any] = {"model": "mixtral"}
    if draw(st.booleans()):
        b.text(body, "input")
    else:
        body["input"] = [_r_item(b) for _ in range(draw(st.integers(1, 4)))]
    b.maybe(body, "instructions", lambda: b.text(body, "instructions"), 2)
    body |= _sampling(draw, "responses")
    if draw(st.booleans()):
        tools = []
        for _ in range(draw(st.integers(1, 2))):
            t: dict[str, Any] = {"type": "function", "name": draw(tool_names)}
            b.maybe(t, "description", lambda t=t: b.text(t, "description"), 2)
            b.maybe(t, "parameters", b.schema, 2)
            tools.append(t)
        body["tools"] = tools
        body["tool_choice"] = draw(
            st.sampled_from(["auto", "none", "required", {"type": "function", "name": tools[0]["name"]}])
        )
    if draw(st.integers(0, 2)) == 0:
        kind = draw(st.sampled_from(["text", "json_object", "json_schema", "json_schema"]))
        fmt: dict[str, Any] = {"type": kind}
        if kind == "json_schema":
            fmt |= {"name": "o", "schema": b.schema()}
            b.maybe(fmt, "description", lambda: b.text(fmt, "description"), 2)
        body["text"] = {"format": fmt}
        b.maybe(body["text"], "verbosity", lambda: draw(st.sampled_from(["low", "high"])))
    _common_text(b, body, responses=True)
    return body


BUILDERS = {"chat": _chat, "completions": _completions, "responses": _responses}


def _places(v: Any, top: bool = True) -> list[tuple[Any, Any]]:
    """Every (container, key) of a body, `seed` at the top level left out (it tracks the request)."""
    out: list[tuple[Any, Any]] = []
    stack = [(v, top)]
    while stack:
        c, is_top = stack.pop()
        keys = list(c) if isinstance(c, dict) else range(len(c)) if isinstance(c, list) else []
        for k in keys:
            if is_top and k == "seed":
                continue
            out.append((c, k))
            if isinstance(c[k], (dict, list)):
                stack.append((c[k], False))
    return out


def _containers(v: Any) -> list[dict[str, Any]]:
    out = [v] if isinstance(v, dict) else []
    return out + [c[k] for c, k in _places(v) if isinstance(c[k], dict)]


@st.composite
def cases(draw: Callable[..., Any], endpoint: str) -> tuple[dict[str, Any], tuple[str, ...], list[str]]:
    """(body, the planted address in the forms that must reach no one, what was done to the body)."""
    b = Builder(draw)
    body = BUILDERS[endpoint](b)
    if not b.slots:  # e.g. one message whose content is null or only images
        b.text(body, "user")
    email = draw(emails)
    planted = email
    form = draw(st.sampled_from(["plain", "plain", "plain", "invisible", "fullwidth"]))
    if form == "invisible":  # hidden characters the PII engine sees through (test_obfuscation.py)
        at = draw(st.integers(1, len(email) - 1))
        planted = email[:at] + draw(st.sampled_from(["\u200b", "\u2060", "\u00ad", "\ufeff"])) + email[at:]
    elif form == "fullwidth":  # look-alike "@" and ".", or letters in a compatibility form
        planted = draw(
            st.sampled_from(
                [
                    email.replace("@", "\uff20"),
                    email.replace(".org", "\uff0eorg"),
                    email.replace("@", "\ufe6b"),
                    email.replace(".org", "\u2024org"),
                    "\uff46\uff5a" + email[2:],
                    "\U0001d41f\U0001d433" + email[2:],
                ]
            )
        )
    pre, post = draw(texts), draw(texts)
    carrier = draw(st.sampled_from([planted, f"{pre} {planted} {post}", f"mail {planted} please", f"{pre} {planted}"]))
    container, key, how = b.slots[draw(st.integers(0, len(b.slots) - 1))]
    if how == "key":
        container[carrier] = container.pop(key)
    elif how == "args":
        container[key] = json.dumps({"q": carrier, "n": 1}, ensure_ascii=draw(st.booleans()))
    else:
        container[key] = carrier
    done = [f"planted {form} at {how} {key!r}"]
    # unknown fields, the connection fields among them, at the top and nested (dropped by the policy)
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 4]))):
        where = body if draw(st.booleans()) else draw(st.sampled_from(_containers(body)))
        k = draw(EXTRA_KEYS)
        if where is body and k in ("seed", *REQUIRED[endpoint]):
            continue
        where[k] = draw(st.one_of(EXTRA_VALUES, st.just(carrier)))
        done.append(f"extra {k!r}")
    # mutations: most bodies get none, so they get past the shape check. A copy: values drawn from
    # sampled_from/just are shared objects, and changing them would change later draws.
    body = copy.deepcopy(body)
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2, 3]))):
        op = draw(st.sampled_from(["retype", "retype", "retype", "delete", "required"]))
        if op == "required":
            k = draw(st.sampled_from(REQUIRED[endpoint]))
            body.pop(k, None)
            done.append(f"removed {k!r}")
            continue
        places = _places(body)
        if not places:
            continue
        c, k = places[draw(st.integers(0, len(places) - 1))]
        if op == "retype":
            c[k] = draw(WEIRD)
            done.append(f"retyped {k!r}")
        else:
            del c[k]
            done.append(f"deleted {k!r}")
    return body, (email, planted, email.split("@")[0]), done


# --- raw bodies --------------------------------------------------------------------------------------
def _deep_bytes(depth: int, leaf: bytes) -> bytes:
    """Nesting written by hand: json.dumps would recurse once per level."""
    return b'{"a":[' * depth + leaf + b"]}" * depth


@st.composite
def raw_cases(draw: Callable[..., Any]) -> tuple[str, Callable[[int], bytes], tuple[str, ...], str]:
    """(endpoint, seed -> raw body, the planted address's forms, what it is)."""
    endpoint = draw(st.sampled_from(sorted(PATHS)))
    body, forms, _ = draw(cases(endpoint))
    email = forms[0]
    kind = draw(st.sampled_from(["binary", "non_object", "truncated", "corrupt", "literal", "deep", "dup", "bom"]))
    if kind == "binary":
        blob = draw(st.binary(max_size=64))
        return endpoint, lambda seed: blob, forms[:2], kind
    if kind == "non_object":
        v = draw(st.one_of(st.sampled_from([[], [body], "x", 0, 1e308, None, True, False, [None], [[{}]]]), WEIRD))
        return endpoint, lambda seed: json.dumps(v, ensure_ascii=False).encode(), forms[:2], kind

    def encoded(seed: int) -> bytes:
        return json.dumps({**body, "seed": seed}, ensure_ascii=False).encode()

    if kind == "truncated":
        frac = draw(st.floats(0, 1, exclude_max=True))
        return endpoint, lambda seed: encoded(seed)[: int(len(encoded(seed)) * frac)], forms[:2], kind
    if kind == "corrupt":
        frac = draw(st.floats(0, 1))
        junk = draw(
            st.sampled_from(
                [
                    b"\xff",
                    b"\xc3",
                    b"\x00",
                    b",",
                    b"}",
                    b"]",
                    b'"',
                    b"\\",
                    b"NaN",
                    b"Infinity",
                    b"-",
                    b"1e400",
                    b"\\ud800",
                    b'"\\ud800"',
                    b"//",
                    b"'",
                ]
            )
        )

        def corrupt(seed: int) -> bytes:
            raw = encoded(seed)
            at = int(len(raw) * frac)
            return raw[:at] + junk + raw[at:]

        return endpoint, corrupt, forms[:2], f"{kind} {junk!r} at {frac:.2f}"
    if kind == "literal":
        lit = draw(
            st.sampled_from(
                [
                    b"NaN",
                    b"Infinity",
                    b"-Infinity",
                    b"1e400",
                    b"-1e400",
                    b"1" * 400,
                    b"-0",
                    b"0.0000000000000000000000000001",
                    b"123456789012345678901234567890",
                    b'"\\u0000"',
                    b'"\\ud800"',
                    b"[1,]",
                    b"{}",
                ]
            )
        )
        field = draw(st.sampled_from(["temperature", "max_tokens", "n", "seed", "metadata", "user", "top_p"]))

        def with_literal(seed: int) -> bytes:
            raw = json.dumps({**body, "seed": seed}, ensure_ascii=False)
            if field == "seed":
                raw = raw[:-1] + ', "seed": ' + lit.decode() + "}"  # a second seed overrides the first
            else:
                raw = raw[:-1] + f', "{field}": ' + lit.decode() + "}"
            return raw.encode()

        return endpoint, with_literal, forms[:2], f"{kind} {field}={lit[:20]!r}"
    if kind == "deep":
        depth = draw(st.one_of(st.integers(50, 70), st.integers(1, 5000)))
        leaf = json.dumps(email).encode()
        where = draw(st.sampled_from(["metadata", "whole"]))
        if where == "whole":
            return endpoint, lambda seed: _deep_bytes(depth, leaf), forms[:2], f"deep whole {depth}"
        return (
            endpoint,
            lambda seed: encoded(seed)[:-1] + b', "metadata": ' + _deep_bytes(depth, leaf) + b"}",
            forms[:2],
            f"deep metadata {depth}",
        )
    if kind == "dup":
        # a duplicate key: the last one wins in the gateway's parser; both carry text
        k = draw(st.sampled_from(["user", "model", "messages", "prompt", "input", "metadata"]))
        dup = json.dumps({"note": email} if k == "metadata" else email)
        return endpoint, lambda seed: encoded(seed)[:-1] + f', "{k}": {dup}'.encode() + b"}", forms[:2], f"dup {k}"
    return endpoint, lambda seed: b"\xef\xbb\xbf" + encoded(seed), forms[:2], kind


# --- the properties ------------------------------------------------------------------------------------
def _send(http: httpx.Client, gw: Gateway, endpoint: str, raw: bytes, headers: dict[str, str] | None = None):
    return http.post(gw.url + PATHS[endpoint], content=raw, headers=headers or HEADERS)


def _check(
    r: httpx.Response,
    forms: tuple[str, ...],
    standin: Standin,
    seed: int,
    raw: bytes,
    backend_forms: tuple[str, ...] | None = None,
) -> None:
    """`forms` must be in no error answer; `backend_forms` (default: `forms`) in no forwarded body."""
    note(f"sent: {raw[:3000]!r}")
    note(f"got: {r.status_code} {r.text[:1000]!r}")
    assert r.status_code < 500, f"{r.status_code}: {r.text[:500]}"
    if 400 <= r.status_code < 500:
        err = r.json()
        assert set(err) == {"error"} and isinstance(err["error"], dict), err
        e = err["error"]
        assert {"message", "type", "param", "code"} <= set(e), e
        assert isinstance(e["message"], str) and isinstance(e["type"], str), e
        assert e["param"] is None or isinstance(e["param"], str), e
        assert e["code"] is None or isinstance(e["code"], (str, int)), e
        assert not [f for f in forms if f in r.text], f"the address is in a {r.status_code} answer: {r.text[:500]}"
    got = standin.last_request()
    if got.get("seed") == seed:  # this request reached the backend
        seen = json.dumps(got, ensure_ascii=False)
        leaked = [f for f in (forms if backend_forms is None else backend_forms) if f in seen]
        assert not leaked, f"{leaked} reached the backend: {seen[:2000]}"
        steering = [k for k in got if is_connection_field(k)]
        assert not steering, f"connection fields forwarded: {steering}"


def _fuzz(http: httpx.Client, gw: Gateway, standin: Standin, endpoint: str, case: tuple) -> None:
    body, forms, done = case
    note(f"{endpoint}: {done}")
    seed = next(_SEEDS)
    body = {**body, "seed": seed}
    raw = json.dumps(body, ensure_ascii=False).encode()
    _check(_send(http, gw, endpoint, raw), forms, standin, seed, raw)


@settings(FUZZ, max_examples=80)
@given(case=cases("chat"))
def test_fuzz_chat_completions(http, gw, standin, case):
    _fuzz(http, gw, standin, "chat", case)


@settings(FUZZ, max_examples=40)
@given(case=cases("completions"))
def test_fuzz_completions(http, gw, standin, case):
    _fuzz(http, gw, standin, "completions", case)


#: Found by this fuzzer: a Responses request with an empty `input` (and no `instructions`) passed the shape
#: check and was forwarded as a chat request with `"messages": []` (which /v1/chat/completions itself refuses
#: with a 400); the stand-in failed on it with a 500 when tools were given, and the caller got a 502.
#: Kept as an explicit example: it is a 400 now.
EMPTY_INPUT = {"model": "mixtral", "input": [], "tools": [{"type": "function", "name": "lookup"}]}


@settings(FUZZ, max_examples=60)
@given(case=cases("responses"))
@example(case=(EMPTY_INPUT, ("fzaaaaaa@example.org",), ["empty input"]))
def test_fuzz_responses(http, gw, standin, case):
    _fuzz(http, gw, standin, "responses", case)


@settings(FUZZ, max_examples=50)
@given(
    case=raw_cases(),
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded"]),
)
def test_fuzz_raw_bodies(http, gw, standin, case, content_type):
    endpoint, make, forms, kind = case
    note(f"{endpoint}: {kind}")
    seed = next(_SEEDS)
    raw = make(seed)
    headers = {"Authorization": HEADERS["Authorization"], **({"content-type": content_type} if content_type else {})}
    # Junk written right next to the address makes it another string ("...@example.orgNaN" is no address):
    # the backend is checked for the forms that still stand between quotes or spaces.
    whole = tuple(f for f in forms if re.search(rb'[" ]' + re.escape(f.encode()) + rb'[" ]', raw))
    _check(_send(http, gw, endpoint, raw, headers), forms, standin, seed, raw, whole)
