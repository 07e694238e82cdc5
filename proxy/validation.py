"""Checks of OpenAI request bodies, done by hand on dicts (no pydantic on the hot path).

Only what the gateway relies on is checked; everything else goes to the backend untouched, so
new OpenAI parameters keep working.
"""
from __future__ import annotations

from typing import Any

import orjson

from . import errors

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise errors.BadRequest("Request body is empty: expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequest(f"We could not parse the JSON body of your request ({exc.args[0].split(':')[0]})",
                                code="invalid_json") from None
    if not isinstance(body, dict):
        raise errors.BadRequest("Request body must be a JSON object", code="invalid_json")
    return body


def _expect(cond: bool, message: str, param: str) -> None:
    if not cond:
        raise errors.Unprocessable(message, param=param, code="invalid_value")


def common(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise errors.BadRequest("Missing required parameter: 'model'", param="model", code="missing_required_parameter")
    _expect(isinstance(model, str) and model != "", "'model' must be a non-empty string", "model")
    _expect(isinstance(body.get("stream", False), bool), "'stream' must be a boolean", "stream")
    n = body.get("n")
    _expect(n is None or (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 128), "'n' must be an integer 1..128", "n")
    for k in ("max_tokens", "max_completion_tokens"):
        v = body.get(k)
        _expect(v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0), f"'{k}' must be a positive integer", k)
    t = body.get("temperature")
    _expect(t is None or (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 2), "'temperature' must be between 0 and 2", "temperature")
    p = body.get("top_p")
    _expect(p is None or (isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1), "'top_p' must be between 0 and 1", "top_p")
    s = body.get("stop")
    _expect(s is None or isinstance(s, str) or (isinstance(s, list) and all(isinstance(x, str) for x in s)),
            "'stop' must be a string or a list of strings", "stop")
    so = body.get("stream_options")
    _expect(so is None or isinstance(so, dict), "'stream_options' must be an object", "stream_options")
    return model


def chat(body: dict[str, Any]) -> str:
    model = common(body)
    msgs = body.get("messages")
    if msgs is None:
        raise errors.BadRequest("Missing required parameter: 'messages'", param="messages", code="missing_required_parameter")
    _expect(isinstance(msgs, list) and len(msgs) > 0, "'messages' must be a non-empty array", "messages")
    for i, m in enumerate(msgs):
        _expect(isinstance(m, dict), f"messages[{i}] must be an object", f"messages[{i}]")
        _expect(m.get("role") in ROLES, f"messages[{i}].role must be one of {sorted(ROLES)}", f"messages[{i}].role")
        c = m.get("content")
        _expect(c is None or isinstance(c, (str, list)), f"messages[{i}].content must be a string or an array", f"messages[{i}].content")
    tools = body.get("tools")
    _expect(tools is None or (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)), "'tools' must be an array of objects", "tools")
    rf = body.get("response_format")
    _expect(rf is None or (isinstance(rf, dict) and rf.get("type") in ("text", "json_object", "json_schema")),
            "'response_format.type' must be text, json_object or json_schema", "response_format")
    return model


def completions(body: dict[str, Any]) -> str:
    model = common(body)
    if "prompt" not in body:
        raise errors.BadRequest("Missing required parameter: 'prompt'", param="prompt", code="missing_required_parameter")
    p = body["prompt"]
    _expect(isinstance(p, str) or (isinstance(p, list) and all(isinstance(x, str) for x in p)),
            "'prompt' must be a string or an array of strings", "prompt")
    return model
