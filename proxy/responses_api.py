"""OpenAI's Responses API (`POST /v1/responses`) on top of chat completions.

Requests are translated to a chat body (so every guardrail sees the same messages), the chat
answer back into a Response object, and a chat stream into Responses' typed events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from . import errors

#: Responses fields that mean the same in a chat request (the body was parsed: all are checked).
_PASSTHROUGH = (
    "temperature",
    "top_p",
    "user",
    "seed",
    "stop",
    "n",
    "tool_choice",
    "parallel_tool_calls",
    "top_logprobs",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
)


def _text_of(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts = []
    for p in content:
        if p.get("type") in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": p.get("text", "")})
        elif p.get("type") == "input_image":
            parts.append({"type": "image_url", "image_url": {"url": p.get("image_url")}})
    return parts


def to_chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """Translate a Responses request to a chat-completions request. `body` was checked by
    `request_shapes.parse("responses", ...)`: its types, items and tools are known to be valid."""
    if body.get("previous_response_id") is not None:
        raise errors.BadRequest(
            "'previous_response_id' is not supported (the gateway stores no responses): "
            "send the conversation in 'input'",
            param="previous_response_id",
            code="unsupported_parameter",
        )
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    inp = body["input"]
    if isinstance(inp, str):
        messages.append({"role": "user", "content": inp})
    else:
        for item in inp:
            kind = item.get("type", "message")
            if kind == "message":
                role = item.get("role", "user")
                messages.append(
                    {"role": "system" if role == "developer" else role, "content": _text_of(item.get("content", ""))}
                )
            elif kind == "function_call":
                call = {
                    "id": item.get("call_id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
                }
                if messages and messages[-1]["role"] == "assistant" and messages[-1].get("tool_calls") is not None:
                    messages[-1]["tool_calls"].append(call)
                else:
                    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            else:  # function_call_output, the only other item type the shape admits
                out = item.get("output", "")
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": item.get("call_id"),
                        "content": out if isinstance(out, str) else orjson.dumps(out).decode(),
                    }
                )
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    for k in _PASSTHROUGH:
        if body.get(k) is not None:
            chat[k] = body[k]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        tools = []
        for t in body["tools"]:  # function tools only (the shape admits no others)
            tools.append(
                {
                    "type": "function",
                    "function": {k: t[k] for k in ("name", "description", "parameters", "strict") if k in t},
                }
            )
        chat["tools"] = tools
    tc = body.get("tool_choice")
    if isinstance(tc, dict) and tc.get("type") == "function" and "name" in tc:
        chat["tool_choice"] = {"type": "function", "function": {"name": tc["name"]}}
    fmt = (body.get("text") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt},
        }
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    return chat


def _usage(u: dict[str, Any] | None) -> dict[str, Any] | None:
    if not u:
        return None
    cached = ((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0
    return {
        "input_tokens": u.get("prompt_tokens", 0),
        "output_tokens": u.get("completion_tokens", 0),
        "total_tokens": u.get("total_tokens", 0),
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens_details": {"reasoning_tokens": u.get("reasoning_tokens") or 0},
    }


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _base(resp_id: str, body: dict[str, Any], status: str, created: int) -> dict[str, Any]:
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "temperature": body.get("temperature"),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p"),
        "usage": None,
        "text": body.get("text") or {"format": {"type": "text"}},
        "metadata": body.get("metadata") or {},
    }


def _message_item(text: str, item_id: str | None = None, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or _new_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call_item(call: dict[str, Any], item_id: str | None = None, status: str = "completed") -> dict[str, Any]:
    fn = call.get("function") or {}
    return {
        "type": "function_call",
        "id": item_id or _new_id("fc"),
        "call_id": call.get("id") or _new_id("call"),
        "name": fn.get("name"),
        "arguments": fn.get("arguments") or "",
        "status": status,
    }


def from_chat_response(chat: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    out = _base(_new_id("resp"), body, "completed", int(time.time()))
    choice = (chat.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    if msg.get("content"):
        out["output"].append(_message_item(msg["content"]))
    for call in msg.get("tool_calls") or []:
        out["output"].append(_call_item(call))
    if choice.get("finish_reason") == "length":
        out["status"] = "incomplete"
        out["incomplete_details"] = {"reason": "max_output_tokens"}
    out["usage"] = _usage(chat.get("usage"))
    return out


async def stream_events(
    chunks: AsyncIterator[dict[str, Any]], body: dict[str, Any], on_error: Callable[[Exception], dict[str, Any]]
) -> AsyncIterator[bytes]:
    """Turn chat-completion chunks into Responses SSE events (`event:` + `data:` lines)."""
    seq = 0
    created = int(time.time())
    resp = _base(_new_id("resp"), body, "in_progress", created)

    def ev(kind: str, payload: dict[str, Any]) -> bytes:
        nonlocal seq
        data = {"type": kind, "sequence_number": seq, **payload}
        seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    yield ev("response.created", {"response": resp})
    yield ev("response.in_progress", {"response": resp})
    text, msg_id, calls, usage, finish = [], None, {}, None, None
    output_index = 0
    try:
        async for chunk in chunks:
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                piece = delta.get("content")
                if piece:
                    if msg_id is None:
                        msg_id = _new_id("msg")
                        item = _message_item("", msg_id, "in_progress")
                        item["content"] = []
                        yield ev("response.output_item.added", {"output_index": output_index, "item": item})
                        yield ev(
                            "response.content_part.added",
                            {
                                "item_id": msg_id,
                                "output_index": output_index,
                                "content_index": 0,
                                "part": {"type": "output_text", "text": "", "annotations": []},
                            },
                        )
                    text.append(piece)
                    yield ev(
                        "response.output_text.delta",
                        {
                            "item_id": msg_id,
                            "output_index": output_index,
                            "content_index": 0,
                            "delta": piece,
                            "logprobs": [],
                        },
                    )
                for tc in delta.get("tool_calls") or []:
                    slot = calls.setdefault(
                        tc.get("index", 0), {"id": None, "function": {"name": None, "arguments": ""}}
                    )
                    slot["id"] = tc.get("id") or slot["id"]
                    fn = tc.get("function") or {}
                    slot["function"]["name"] = fn.get("name") or slot["function"]["name"]
                    slot["function"]["arguments"] += fn.get("arguments") or ""
                finish = choice.get("finish_reason") or finish
    except Exception as exc:  # the caller maps the failure to an error payload, once
        err = on_error(exc)
        resp.update(status="failed", error={"code": err["error"].get("code"), "message": err["error"]["message"]})
        yield ev("error", {"code": err["error"].get("code"), "message": err["error"]["message"], "param": None})
        yield ev("response.failed", {"response": resp})
        return
    if msg_id is not None:
        full = "".join(text)
        yield ev(
            "response.output_text.done",
            {"item_id": msg_id, "output_index": output_index, "content_index": 0, "text": full, "logprobs": []},
        )
        part = {"type": "output_text", "text": full, "annotations": []}
        yield ev(
            "response.content_part.done",
            {"item_id": msg_id, "output_index": output_index, "content_index": 0, "part": part},
        )
        item = _message_item(full, msg_id)
        yield ev("response.output_item.done", {"output_index": output_index, "item": item})
        resp["output"].append(item)
        output_index += 1
    for _, call in sorted(calls.items()):
        item = _call_item(call)
        added = {**item, "arguments": "", "status": "in_progress"}
        yield ev("response.output_item.added", {"output_index": output_index, "item": added})
        yield ev(
            "response.function_call_arguments.delta",
            {"item_id": item["id"], "output_index": output_index, "delta": item["arguments"]},
        )
        yield ev(
            "response.function_call_arguments.done",
            {"item_id": item["id"], "output_index": output_index, "arguments": item["arguments"], "name": item["name"]},
        )
        yield ev("response.output_item.done", {"output_index": output_index, "item": item})
        resp["output"].append(item)
        output_index += 1
    resp["status"] = "incomplete" if finish == "length" else "completed"
    if finish == "length":
        resp["incomplete_details"] = {"reason": "max_output_tokens"}
    resp["usage"] = _usage(usage)
    yield ev("response.completed" if resp["status"] == "completed" else "response.incomplete", {"response": resp})
