"""A policy refusal shaped as an ordinary answer (finish_reason "content_filter"), whole or streamed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson


def refusal_completion(kind: str, model: str, text: str, request_id: str) -> dict[str, Any]:
    """A policy refusal shaped as an ordinary answer, as OpenAI's moderation refusals are."""
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    if kind == "chat":
        return {
            "id": f"chatcmpl-mg-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "content_filter",
                }
            ],
            "usage": usage,
        }
    return {
        "id": f"cmpl-mg-{request_id}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "content_filter"}],
        "usage": usage,
    }


async def chunks_of(data: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """A whole completion as stream chunks (role, content, finish)."""
    chat = data["object"] == "chat.completion"
    base = {
        "id": data["id"],
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": data["created"],
        "model": data["model"],
    }
    c = data["choices"][0]
    if chat:
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {"content": c["message"]["content"]}, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": c["finish_reason"]}]}
    else:
        yield {**base, "choices": [{"index": 0, "text": c["text"], "finish_reason": c["finish_reason"]}]}


async def refusal_stream(data: dict[str, Any]) -> AsyncIterator[bytes]:
    async for chunk in chunks_of(data):
        yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    yield b"data: [DONE]\n\n"
