"""The OpenAI request shapes the gateway accepts, and the one walker of their text.

Every field of the three endpoints (chat completions, text completions, the Responses API) is
declared once below with its type and whether it carries text. `parse()` checks a body against that
table and returns a clean copy: malformed values raise `ShapeError` (the HTTP edge answers 400 with
the field's path as `param`), fields the gateway does not know are dropped, refused or scanned as
the policy says, and fields that steer the connection (`api_base`, `api_key`, ...) are never kept,
whatever the policy says. `text_slots()` yields every text-bearing field of a parsed body with a way
to write it back: PII masking, topic rules, residency and the audit record all read the request
through it, so a field cannot be forwarded without being seen.

Why a table and hand-written checks rather than pydantic models: the body is forwarded as the client
wrote it (key order, numbers, unknown-but-allowed extras), and these checks cost microseconds on the
hot path; the table is the typed model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

UnknownFields = Literal["drop", "reject", "scan"]
Endpoint = Literal["chat", "completions", "responses"]

#: Deepest nesting of objects and arrays accepted in a body (a JSON schema rarely needs 20).
MAX_DEPTH = 64

#: Fields that would steer the connection if a client library (litellm above all) read them from a
#: body: where to send the request, with which credentials and headers, through which provider.
#: Never kept, under any `unknown_fields` setting.
CONNECTION_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "api_type",
        "organization",
        "project",
        "extra_headers",
        "headers",
        "extra_body",
        "extra_query",
        "custom_llm_provider",
        "deployment_id",
        "azure_ad_token",
        "azure_ad_token_provider",
        "azure_username",
        "azure_password",
        "tenant_id",
        "client_id",
        "client_secret",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_region_name",
        "aws_profile_name",
        "aws_role_name",
        "aws_web_identity_token",
        "aws_bedrock_runtime_endpoint",
        "vertex_project",
        "vertex_location",
        "vertex_credentials",
        "vertex_ai_project",
        "vertex_ai_location",
        "region_name",
        "timeout",
        "num_retries",
        "max_retries",
        "mock_response",
        "mock_tool_calls",
        "fallbacks",
        "context_window_fallbacks",
        "model_list",
        "proxy_server_request",
        "client",
        "input_cost_per_token",
        "output_cost_per_token",
        "cost_per_token",
        "litellm_params",
        "litellm_metadata",
        "litellm_call_id",
        "litellm_logging_obj",
        "callbacks",
        "success_callback",
        "failure_callback",
        "ssl_verify",
        "http_client",
        "bootstrap_host",
        "bootstrap_port",
        "bootstrap_room",
        "lora_path",
    }
)
_CONNECTION_PREFIXES = ("litellm_", "aws_", "azure_", "vertex_", "watsonx_", "bedrock_", "sagemaker_")


class ShapeError(ValueError):
    """A body that does not have the shape of its endpoint; `param` names the offending field."""

    def __init__(self, message: str, param: str | None, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def is_connection_field(name: str) -> bool:
    return name in CONNECTION_FIELDS or name.startswith(_CONNECTION_PREFIXES)


# --- checks of one value ----------------------------------------------------------------------
Check = Callable[[Any, str, "_Parse"], Any]  # returns the value to forward (usually the same)


def _fail(path: str, message: str) -> ShapeError:
    return ShapeError(f"'{path}' {message}", path)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def num(lo: float | None = None, hi: float | None = None) -> Check:
    def check(v: Any, path: str, _: _Parse) -> Any:
        if not _is_num(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _fail(path, f"must be a number{_range(lo, hi)}")
        return v

    return check


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(v: Any, path: str, _: _Parse) -> Any:
        if not _is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _fail(path, f"must be an integer{_range(lo, hi)}")
        return v

    return check


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" between {lo:g} and {hi:g}"
    if lo is not None:
        return f" of at least {lo:g}"
    return "" if hi is None else f" of at most {hi:g}"


def boolean(v: Any, path: str, _: _Parse) -> Any:
    if not isinstance(v, bool):
        raise _fail(path, "must be a boolean")
    return v


def string(v: Any, path: str, _: _Parse) -> Any:
    if not isinstance(v, str):
        raise _fail(path, "must be a string")
    return v


def one_of(*values: str) -> Check:
    def check(v: Any, path: str, _: _Parse) -> Any:
        if v not in values:
            raise _fail(path, f"must be one of {', '.join(repr(x) for x in values)}")
        return v

    return check


def nullable(inner: Check) -> Check:
    def check(v: Any, path: str, p: _Parse) -> Any:
        return None if v is None else inner(v, path, p)

    return check


def string_or_strings(max_items: int) -> Check:
    def check(v: Any, path: str, _: _Parse) -> Any:
        if isinstance(v, str):
            return v
        if isinstance(v, list) and len(v) <= max_items and all(isinstance(x, str) for x in v):
            return v
        raise _fail(path, f"must be a string or an array of at most {max_items} strings")

    return check


def strings(v: Any, path: str, _: _Parse) -> Any:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _fail(path, "must be an array of strings")
    return v


def integers(v: Any, path: str, _: _Parse) -> Any:
    if not isinstance(v, list) or not all(_is_int(x) for x in v):
        raise _fail(path, "must be an array of integers")
    return v


def any_json(v: Any, path: str, _: _Parse) -> Any:
    return v  # depth is bounded before parsing; text inside is walked as free JSON


def json_object(v: Any, path: str, _: _Parse) -> Any:
    if not isinstance(v, dict):
        raise _fail(path, "must be an object")
    return v


def logit_bias(v: Any, path: str, _: _Parse) -> Any:
    if not isinstance(v, dict):
        raise _fail(path, "must be an object of token ids to numbers")
    for k, x in v.items():
        if not (isinstance(k, str) and k.isdigit() and len(k) <= 10) or not _is_num(x) or not -100 <= x <= 100:
            raise _fail(
                f"{path}.{k}" if isinstance(k, str) and len(k) <= 32 else path,
                "must map token ids (digits) to numbers between -100 and 100",
            )
    return v


def obj(fields: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    """An object with known fields; unknown ones are handled as the policy says."""

    def check(v: Any, path: str, p: _Parse) -> Any:
        if not isinstance(v, dict):
            raise _fail(path, "must be an object")
        return p.fields(v, fields, path, required)

    return check


def array(item: Check, min_items: int = 0, max_items: int | None = None) -> Check:
    def check(v: Any, path: str, p: _Parse) -> Any:
        if not isinstance(v, list):
            raise _fail(path, "must be an array")
        if len(v) < min_items:
            raise _fail(path, "must not be empty" if min_items == 1 else f"must hold at least {min_items} items")
        if max_items is not None and len(v) > max_items:
            raise _fail(path, f"must hold at most {max_items} items")
        return [item(x, f"{path}[{i}]", p) for i, x in enumerate(v)]

    return check


def union(by_type: dict[str, Check], default: str | None = None, what: str = "item") -> Check:
    """An object told apart by its `type` field."""

    def check(v: Any, path: str, p: _Parse) -> Any:
        if not isinstance(v, dict):
            raise _fail(path, "must be an object")
        kind = v.get("type", default)
        inner = by_type.get(kind) if isinstance(kind, str) else None
        if inner is None:
            raise ShapeError(
                f"'{path}.type': {what} type {str(kind)[:40]!r} is not supported "
                f"(supported: {', '.join(sorted(by_type))})",
                f"{path}.type",
            )
        return inner(v, path, p)

    return check


def either(first: Check, second: Check, message: str) -> Check:
    def check(v: Any, path: str, p: _Parse) -> Any:
        deepest: ShapeError | None = None
        for c in (first, second):
            try:
                return c(v, path, p)
            except ShapeError as exc:  # the error found deepest inside says most
                if (exc.param or "") != path and len(exc.param or "") > len((deepest.param or "") if deepest else ""):
                    deepest = exc
        raise deepest or _fail(path, message)

    return check


_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def tool_name(v: Any, path: str, _: _Parse) -> Any:
    if not isinstance(v, str) or not _TOOL_NAME.match(v):
        raise _fail(path, "must be 1 to 128 letters, digits, '_', '-', '.' or ':'")
    return v


# --- the shapes --------------------------------------------------------------------------------
ROLES = ("system", "developer", "user", "assistant", "tool", "function")

_text_part = obj({"type": string, "text": string}, ("text",))
_image_part = obj(
    {
        "type": string,
        "image_url": either(
            obj({"url": string, "detail": one_of("auto", "low", "high")}, ("url",)),
            string,
            "must be an object with a 'url' string",
        ),
    },
    ("image_url",),
)
_refusal_part = obj({"type": string, "refusal": string}, ("refusal",))
CONTENT_PART = union({"text": _text_part, "image_url": _image_part, "refusal": _refusal_part}, what="content part")
CONTENT = either(string, array(CONTENT_PART), "must be a string or an array of content parts")

_call_function = obj(
    {"name": tool_name, "arguments": either(string, json_object, "must be a string or an object")}, ("name",)
)
TOOL_CALL = obj(
    {"id": string, "type": one_of("function"), "function": _call_function, "index": integer(0)}, ("function",)
)
MESSAGE = obj(
    {
        "role": one_of(*ROLES),
        "content": nullable(CONTENT),
        "name": string,
        "tool_calls": nullable(array(TOOL_CALL)),
        "tool_call_id": string,
        "function_call": nullable(_call_function),
        "refusal": nullable(string),
        "reasoning_content": nullable(string),
        "audio": nullable(obj({"id": string})),
        "prefix": boolean,
    },
    ("role",),
)
FUNCTION_DEF = obj(
    {"name": tool_name, "description": string, "parameters": json_object, "strict": nullable(boolean)}, ("name",)
)
TOOL = obj({"type": one_of("function"), "function": FUNCTION_DEF}, ("type", "function"))
TOOL_CHOICE = either(
    one_of("none", "auto", "required"),
    obj({"type": one_of("function"), "function": obj({"name": tool_name}, ("name",))}, ("type", "function")),
    "must be 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}",
)
RESPONSE_FORMAT = union(
    {
        "text": obj({"type": string}),
        "json_object": obj({"type": string}),
        "json_schema": obj(
            {
                "type": string,
                "json_schema": obj(
                    {"name": string, "description": string, "schema": json_object, "strict": nullable(boolean)},
                    ("name",),
                ),
            },
            ("json_schema",),
        ),
    },
    what="response_format",
)
STREAM_OPTIONS = obj({"include_usage": boolean, "include_obfuscation": boolean, "continuous_usage_stats": boolean})

#: Sampling and decoding parameters without text, OpenAI's and SGLang's: forwarded unchanged.
SAMPLING: dict[str, Check] = {
    "model": string,
    "stream": boolean,
    "stream_options": nullable(STREAM_OPTIONS),
    "temperature": nullable(num(0, 2)),
    "top_p": nullable(num(0, 1)),
    "n": nullable(integer(1, 128)),
    "max_tokens": nullable(integer(1)),
    "max_completion_tokens": nullable(integer(1)),
    "frequency_penalty": nullable(num(-2, 2)),
    "presence_penalty": nullable(num(-2, 2)),
    "seed": nullable(integer()),
    "logit_bias": nullable(logit_bias),
    "logprobs": nullable(either(boolean, integer(0, 20), "must be a boolean (chat) or an integer 0..20 (completions)")),
    "top_logprobs": nullable(integer(0, 20)),
    "service_tier": nullable(string),
    "store": nullable(boolean),
    # SGLang's extras (sampling_params in its OpenAI-compatible server)
    "top_k": nullable(integer(-1)),
    "min_p": nullable(num(0, 1)),
    "repetition_penalty": nullable(num(0, 2)),
    "min_tokens": nullable(integer(0)),
    "ignore_eos": nullable(boolean),
    "stop_token_ids": nullable(integers),
    "no_stop_trim": nullable(boolean),
    "skip_special_tokens": nullable(boolean),
    "spaces_between_special_tokens": nullable(boolean),
    "separate_reasoning": nullable(boolean),
    "stream_reasoning": nullable(boolean),
    "return_hidden_states": nullable(boolean),
    "continue_final_message": nullable(boolean),
}

#: Fields that carry text (walked by text_slots), beside messages/prompt/input.
_TEXT_TOP = {
    "user": nullable(string),
    "stop": nullable(string_or_strings(16)),
    "metadata": nullable(json_object),
    "regex": nullable(string),
    "ebnf": nullable(string),
    "json_schema": nullable(either(string, json_object, "must be a string or an object")),
    "chat_template_kwargs": nullable(json_object),
    "prompt_cache_key": nullable(string),
    "safety_identifier": nullable(string),
}

CHAT: dict[str, Check] = {
    **SAMPLING,
    **_TEXT_TOP,
    "messages": array(MESSAGE, 1),
    "tools": nullable(array(TOOL)),
    "tool_choice": nullable(TOOL_CHOICE),
    "parallel_tool_calls": nullable(boolean),
    "functions": nullable(array(FUNCTION_DEF)),
    "function_call": nullable(
        either(one_of("none", "auto"), obj({"name": tool_name}, ("name",)), "must be 'none', 'auto' or {'name': ...}")
    ),
    "response_format": nullable(RESPONSE_FORMAT),
    "reasoning_effort": nullable(one_of("none", "minimal", "low", "medium", "high")),
    "verbosity": nullable(one_of("low", "medium", "high")),
    "modalities": nullable(strings),
    "prediction": nullable(obj({"type": one_of("content"), "content": CONTENT})),
    "web_search_options": nullable(json_object),
}

COMPLETIONS: dict[str, Check] = {
    **SAMPLING,
    **_TEXT_TOP,
    "prompt": either(
        string,
        array(string, 1),
        "must be a string or a non-empty array of strings (token-id prompts cannot be checked for personal data)",
    ),
    "suffix": nullable(string),
    "echo": nullable(boolean),
    "best_of": nullable(integer(1, 20)),
}

_r_text = obj({"type": string, "text": string}, ("text",))
_r_image = obj({"type": string, "image_url": string, "detail": one_of("auto", "low", "high"), "file_id": string})
R_CONTENT = either(
    string,
    array(
        union(
            {"input_text": _r_text, "output_text": _r_text, "text": _r_text, "input_image": _r_image},
            what="content part",
        )
    ),
    "must be a string or an array of content parts",
)
R_ITEM = union(
    {
        "message": obj(
            {
                "type": string,
                "role": one_of("user", "assistant", "system", "developer"),
                "content": R_CONTENT,
                "id": string,
                "status": string,
            },
            ("role", "content"),
        ),
        "function_call": obj(
            {"type": string, "call_id": string, "name": tool_name, "arguments": string, "id": string, "status": string},
            ("call_id", "name"),
        ),
        "function_call_output": obj(
            {"type": string, "call_id": string, "output": any_json, "id": string, "status": string},
            ("call_id", "output"),
        ),
    },
    default="message",
    what="input item",
)
R_TOOL = union(
    {
        "function": obj(
            {
                "type": string,
                "name": tool_name,
                "description": nullable(string),
                "parameters": nullable(json_object),
                "strict": nullable(boolean),
            },
            ("name",),
        )
    },
    what="tool",
)
R_FORMAT = union(
    {
        "text": obj({"type": string}),
        "json_object": obj({"type": string}),
        "json_schema": obj(
            {"type": string, "name": string, "schema": json_object, "description": string, "strict": nullable(boolean)},
            ("name", "schema"),
        ),
    },
    what="text.format",
)

RESPONSES: dict[str, Check] = {
    "model": string,
    "stream": boolean,
    "input": either(string, array(R_ITEM, 1), "must be a string or a non-empty array of items"),
    "instructions": nullable(string),
    "tools": nullable(array(R_TOOL)),
    "tool_choice": nullable(
        either(
            one_of("none", "auto", "required"),
            obj({"type": one_of("function"), "name": tool_name}, ("type", "name")),
            "must be 'none', 'auto', 'required' or {'type': 'function', 'name': ...}",
        )
    ),
    "text": nullable(obj({"format": R_FORMAT, "verbosity": one_of("low", "medium", "high")})),
    "temperature": nullable(num(0, 2)),
    "top_p": nullable(num(0, 1)),
    "max_output_tokens": nullable(integer(1)),
    "user": nullable(string),
    "metadata": nullable(json_object),
    "parallel_tool_calls": nullable(boolean),
    "store": nullable(boolean),
    "seed": nullable(integer()),
    "stop": nullable(string_or_strings(16)),
    "n": nullable(integer(1, 128)),
    "top_logprobs": nullable(integer(0, 20)),
    "service_tier": nullable(string),
    "truncation": nullable(one_of("auto", "disabled")),
    "include": nullable(strings),
    "reasoning": nullable(
        obj(
            {
                "effort": nullable(one_of("none", "minimal", "low", "medium", "high")),
                "summary": nullable(one_of("auto", "concise", "detailed")),
            }
        )
    ),
    "prompt_cache_key": nullable(string),
    "safety_identifier": nullable(string),
    "previous_response_id": nullable(string),
}

SHAPES: dict[str, dict[str, Check]] = {"chat": CHAT, "completions": COMPLETIONS, "responses": RESPONSES}
REQUIRED: dict[str, tuple[str, ...]] = {
    "chat": ("model", "messages"),
    "completions": ("model", "prompt"),
    "responses": ("model", "input"),
}


# --- parsing -----------------------------------------------------------------------------------
@dataclass
class Parsed:
    """A checked body: what to forward, and what was left out of it (field paths only, never values)."""

    body: dict[str, Any]
    dropped: list[str] = field(default_factory=list)
    connection: list[str] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)  # unknown fields kept under `scan` (walked as free JSON)


class _Parse:
    def __init__(self, unknown: UnknownFields) -> None:
        self.unknown = unknown
        self.out = Parsed({})

    def fields(
        self, v: dict[str, Any], fields: dict[str, Check], path: str, required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        for name in required:
            if v.get(name) is None:
                p = f"{path}.{name}" if path else name
                raise ShapeError(f"Missing required parameter: '{p}'", p, "missing_required_parameter")
        out: dict[str, Any] = {}
        for k, x in v.items():
            p = f"{path}.{k}" if path else k
            check = fields.get(k)
            if check is not None:
                out[k] = check(x, p, self)
            elif is_connection_field(k):
                self.out.connection.append(_safe_path(p))
            elif self.unknown == "reject":
                raise ShapeError(
                    f"Unrecognized request argument supplied: '{_safe_path(p)}'", _safe_path(p), "unknown_parameter"
                )
            elif self.unknown == "scan":
                self.out.scanned.append(p)
                out[k] = x
            else:
                self.out.dropped.append(_safe_path(p))
        return out


def _safe_path(path: str) -> str:
    """A field path fit for an error message or a log line: client-chosen names are cut and, when they
    are not plain identifiers, replaced (a name could itself be an email address)."""
    head, _, last = path.rpartition(".")
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}(\[\d+\])*", last):
        return path
    return f"{head}.<field>" if head else "<field>"


def check_depth(body: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than `limit` (iteratively: the check itself must not recurse)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            raise ShapeError(f"The request nests objects and arrays deeper than {limit} levels", None, "too_deep")
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values() if isinstance(x, (dict, list)))
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v if isinstance(x, (dict, list)))


def parse(endpoint: Endpoint, body: dict[str, Any], unknown: UnknownFields = "drop") -> Parsed:
    """Check `body` against its endpoint's shape; a clean copy to forward, or ShapeError."""
    check_depth(body)
    p = _Parse(unknown)
    p.out.body = p.fields(body, SHAPES[endpoint], "", REQUIRED[endpoint])
    if not p.out.body["model"]:
        raise ShapeError("'model' must be a non-empty string", "model")
    return p.out


# --- the walker --------------------------------------------------------------------------------
class TextSlot:
    """One string of a body (a value, or a key of a free JSON object), and how to write it back."""

    __slots__ = ("container", "key", "path", "message", "role", "is_key")

    def __init__(
        self,
        container: Any,
        key: Any,
        path: str,
        message: int | None = None,
        role: str | None = None,
        is_key: bool = False,
    ) -> None:
        self.container, self.key, self.path = container, key, path
        self.message, self.role, self.is_key = message, role, is_key

    @property
    def text(self) -> str:
        return self.key if self.is_key else self.container[self.key]  # type: ignore[no-any-return]

    def write(self, value: str) -> None:
        if not self.is_key:
            self.container[self.key] = value
            return
        if value == self.key:
            return
        d = self.container  # rename the key where it stands: key order can matter (schema properties)
        items = [(value if k == self.key else k, x) for k, x in d.items()]
        d.clear()
        d.update(items)
        self.key = value


def _str(c: Any, k: Any, path: str, m: int | None = None, role: str | None = None) -> Iterator[TextSlot]:
    if (
        isinstance(c, (dict, list))
        and (k in c if isinstance(c, dict) else 0 <= k < len(c))
        and isinstance(c[k], str)
        and c[k]
    ):
        yield TextSlot(c, k, path, m, role)


def _json(v: Any, path: str, m: int | None = None, role: str | None = None) -> Iterator[TextSlot]:
    """Every string in free JSON: values and object keys (bounded depth: parse() ran first)."""
    if isinstance(v, dict):
        for k in list(v):
            p = f"{path}.{k}" if len(k) <= 64 else f"{path}.<key>"
            x = v[k]
            if isinstance(x, str):
                if x:
                    yield TextSlot(v, k, p, m, role)
            else:
                yield from _json(x, p, m, role)
            if k:  # after its value: slots are written in order, and this one renames the key
                yield TextSlot(v, k, p, m, role, is_key=True)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            if isinstance(x, str):
                if x:
                    yield TextSlot(v, i, f"{path}[{i}]", m, role)
            else:
                yield from _json(x, f"{path}[{i}]", m, role)


def _strings(body: dict[str, Any], k: str) -> Iterator[TextSlot]:
    v = body.get(k)
    if isinstance(v, str):
        yield from _str(body, k, k)
    elif isinstance(v, list):
        for i in range(len(v)):
            yield from _str(v, i, f"{k}[{i}]")


def _content(m: dict[str, Any], key: str, path: str, i: int | None, role: str | None) -> Iterator[TextSlot]:
    c = m.get(key)
    if isinstance(c, str):
        yield from _str(m, key, path, i, role)
    elif isinstance(c, list):
        for j, part in enumerate(c):
            if not isinstance(part, dict):
                continue
            pp = f"{path}[{j}]"
            for k in ("text", "refusal"):
                yield from _str(part, k, f"{pp}.{k}", i, role)
            img = part.get("image_url")
            if isinstance(img, dict):
                img, owner, pk = img.get("url"), img, "url"
            else:
                owner, pk = part, "image_url"
            if isinstance(img, str) and not img.startswith("data:"):  # a URL's path and query can name someone
                yield from _str(owner, pk, f"{pp}.image_url", i, role)


def _call(fn: Any, path: str, i: int | None, role: str | None) -> Iterator[TextSlot]:
    if not isinstance(fn, dict):
        return
    yield from _str(fn, "name", f"{path}.name", i, role)
    args = fn.get("arguments")
    if isinstance(args, str):
        yield from _str(fn, "arguments", f"{path}.arguments", i, role)
    else:
        yield from _json(args, f"{path}.arguments", i, role)


def _function_def(fn: Any, path: str) -> Iterator[TextSlot]:
    if isinstance(fn, dict):
        yield from _str(fn, "name", f"{path}.name")
        yield from _str(fn, "description", f"{path}.description")
        yield from _json(fn.get("parameters"), f"{path}.parameters")


def _messages(body: dict[str, Any]) -> Iterator[TextSlot]:
    for i, m in enumerate(body.get("messages") or []):
        if not isinstance(m, dict):
            continue
        role = m.get("role") if isinstance(m.get("role"), str) else None
        p = f"messages[{i}]"
        yield from _content(m, "content", f"{p}.content", i, role)
        for k in ("name", "refusal", "reasoning_content", "tool_call_id"):
            yield from _str(m, k, f"{p}.{k}", i, role)
        for j, call in enumerate(m.get("tool_calls") or []):
            if isinstance(call, dict):
                yield from _str(call, "id", f"{p}.tool_calls[{j}].id", i, role)
                yield from _call(call.get("function"), f"{p}.tool_calls[{j}].function", i, role)
        yield from _call(m.get("function_call"), f"{p}.function_call", i, role)


def _chat_extras(body: dict[str, Any]) -> Iterator[TextSlot]:
    for j, t in enumerate(body.get("tools") or []):
        if isinstance(t, dict):
            yield from _function_def(t.get("function"), f"tools[{j}].function")
    for j, fn in enumerate(body.get("functions") or []):
        yield from _function_def(fn, f"functions[{j}]")
    tc = body.get("tool_choice")
    if isinstance(tc, dict) and isinstance(tc.get("function"), dict):
        yield from _str(tc["function"], "name", "tool_choice.function.name")
    fc = body.get("function_call")
    if isinstance(fc, dict):
        yield from _str(fc, "name", "function_call.name")
    rf = body.get("response_format")
    if isinstance(rf, dict) and isinstance(rf.get("json_schema"), dict):
        js = rf["json_schema"]
        yield from _str(js, "name", "response_format.json_schema.name")
        yield from _str(js, "description", "response_format.json_schema.description")
        yield from _json(js.get("schema"), "response_format.json_schema.schema")
    pred = body.get("prediction")
    if isinstance(pred, dict):
        yield from _content(pred, "content", "prediction.content", None, None)
    yield from _json(body.get("web_search_options"), "web_search_options")


def _common(body: dict[str, Any]) -> Iterator[TextSlot]:
    for k in ("user", "regex", "ebnf", "prompt_cache_key", "safety_identifier", "suffix", "instructions"):
        yield from _str(body, k, k)
    yield from _strings(body, "stop")
    for k in ("metadata", "chat_template_kwargs"):
        yield from _json(body.get(k), k)
    js = body.get("json_schema")
    if isinstance(js, str):
        yield from _str(body, "json_schema", "json_schema")
    else:
        yield from _json(js, "json_schema")


def _responses(body: dict[str, Any]) -> Iterator[TextSlot]:
    inp = body.get("input")
    if isinstance(inp, str):
        yield from _str(body, "input", "input", 0, "user")
    elif isinstance(inp, list):
        for i, item in enumerate(inp):
            if not isinstance(item, dict):
                continue
            p, role = f"input[{i}]", item.get("role") if isinstance(item.get("role"), str) else None
            yield from _content(item, "content", f"{p}.content", i, role)
            for k in ("name", "arguments", "call_id"):
                yield from _str(item, k, f"{p}.{k}", i, role)
            out = item.get("output")
            if isinstance(out, str):
                yield from _str(item, "output", f"{p}.output", i, "tool")
            else:
                yield from _json(out, f"{p}.output", i, "tool")
    for j, t in enumerate(body.get("tools") or []):
        yield from _function_def(t, f"tools[{j}]")
    tc = body.get("tool_choice")
    if isinstance(tc, dict):
        yield from _str(tc, "name", "tool_choice.name")
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict):
        for k in ("name", "description"):
            yield from _str(fmt, k, f"text.format.{k}")
        yield from _json(fmt.get("schema"), "text.format.schema")


def text_slots(endpoint: Endpoint, body: dict[str, Any], scanned: list[str] | tuple[str, ...] = ()) -> list[TextSlot]:
    """Every text-bearing field of a parsed body, in body order: message content (strings and parts),
    names, tool definitions, tool-call ids and arguments (string or object), function_call, refusal,
    schema texts, stop, user, metadata, suffix, Responses instructions and input, SGLang's regex/ebnf/
    json_schema, and unknown fields kept under `scan`."""
    slots: list[TextSlot] = []
    if endpoint == "chat":
        slots += _messages(body)
        slots += _chat_extras(body)
    elif endpoint == "completions":
        slots += _strings(body, "prompt")
    else:
        slots += _responses(body)
    slots += _common(body)
    for name in scanned:
        if "." not in name and name in body:  # top-level unknown fields; nested ones sit inside walked JSON
            v = body[name]
            if isinstance(v, str):
                slots += _str(body, name, name)
            else:
                slots += _json(v, name)
    return slots


def conversation_text(endpoint: Endpoint, body: dict[str, Any]) -> str:
    """The whole request as role-labelled lines of text (the audit record's prompt)."""
    lines: list[str] = []
    current: tuple[int | None, str | None] | None = None
    for s in text_slots(endpoint, body):
        head = (s.message, s.role) if s.message is not None else None
        label = s.role or "?" if s.message is not None else s.path
        piece = (
            s.text
            if s.path.endswith(("content", "text", "input", "prompt"))
            or "content[" in s.path
            or s.path.startswith("prompt")
            else f"[{s.path.rsplit('.', 1)[-1]}: {s.text}]"
        )
        if head is not None and head == current:
            lines[-1] += " " + piece
        else:
            lines.append(f"{label}: {piece}")
        current = head
    return "\n".join(lines)


def latest_user_text(endpoint: Endpoint, body: dict[str, Any]) -> str:
    """What topic rules judge: every text of the newest user message (or the whole prompt)."""
    slots = text_slots(endpoint, body)
    if endpoint == "completions":
        return "\n".join(s.text for s in slots if s.path.startswith("prompt"))
    users = [s.message for s in slots if s.role == "user" and s.message is not None]
    if not users:
        return ""
    last = max(users)
    return "\n".join(s.text for s in slots if s.message == last and not s.is_key)
