"""A CPU stand-in for SGLang's OpenAI-compatible server, for CI where no GPU runs.

It answers the way `python -m sglang.launch_server --enable-cache-report --enable-metrics` does:
the same routes, the same JSON and SSE shapes (including `usage.prompt_tokens_details` that is
null when nothing was cached), and `cached_tokens` computed by a real radix prefix cache over
Mixtral's tokenizer. What it says is scripted, not generated:

* echo (default): the answer is the last user (or tool) message exactly as received, so tests can
  see what the model saw; with `tools` and a user turn last, it calls the first tool instead with
  `{"input": <that message>}` as arguments;
* replies: a list of scripted answers used in turn (e.g. JSON for schema tests).

Faults for fallback tests: `error_rate` (HTTP 500), `hang` (never answers, /health_generate
included, as a hung scheduler), `drop_after` (stream breaks after N chunks). Timing: `ttft_ms`,
`token_ms`. Load: `max_running_requests` (SGLang's `--max-running-requests`): requests beyond it
wait in a queue, reported as `sglang:num_queue_reqs`. All of it can be changed at run time with
`POST /standin/config`, which real SGLang does not have; tests use it only on stand-ins they start.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from .radix_cache import RadixCache
from .tokenizer import load_tokenizer, message_text, render_mixtral_chat

DEFAULT_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"


@dataclass
class StandinConfig:
    model: str = DEFAULT_MODEL
    replies: list[str] = field(default_factory=list)
    ttft_ms: float = 0.0
    token_ms: float = 0.0
    error_rate: float = 0.0
    hang: bool = False
    drop_after: int | None = None
    max_running_requests: int | None = None
    cache_capacity_tokens: int = 200_000
    cache_report: bool = True
    tokenizer: str | None = None


class _Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.cached_tokens = 0
        self.errors_injected = 0
        self.streams_started = 0
        self.streams_completed = 0
        self.streams_cancelled = 0
        self.active = 0  # streams being sent
        self.running = 0  # requests admitted (SGLang's num_running_reqs)
        self.queued = 0  # requests waiting for a slot (num_queue_reqs)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(message: str, status: int, type_: str) -> Response:
    # SGLang's ErrorResponse shape.
    return _json({"object": "error", "message": message, "type": type_, "param": None, "code": status}, status)


class Standin:
    """Holds the config, tokenizer, radix cache and counters of one stand-in server."""

    def __init__(self, config: StandinConfig) -> None:
        self.config = config
        self.tokenizer = load_tokenizer(config.tokenizer)
        self.cache = RadixCache(config.cache_capacity_tokens)
        self.stats = _Stats()
        self._reply_index = 0
        self.last_request: dict[str, Any] | None = None
        self._slot_freed = asyncio.Condition()

    # --- admission, as SGLang's scheduler does with --max-running-requests -------------------
    async def _enter(self) -> None:
        limit = self.config.max_running_requests
        if limit and self.stats.running >= limit:
            self.stats.queued += 1
            try:
                async with self._slot_freed:
                    await self._slot_freed.wait_for(
                        lambda: (
                            not self.config.max_running_requests
                            or self.stats.running < self.config.max_running_requests
                        )
                    )
            finally:
                self.stats.queued -= 1
        self.stats.running += 1

    async def _leave(self) -> None:
        self.stats.running -= 1
        async with self._slot_freed:
            self._slot_freed.notify()

    async def _released(self, body: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for chunk in body:
                yield chunk
        finally:
            await self._leave()

    # --- what the "model" says -------------------------------------------------------------
    def _answer(self, body: dict[str, Any], chat: bool) -> tuple[str, list[dict] | None]:
        if self.config.replies:
            text = self.config.replies[self._reply_index % len(self.config.replies)]
            self._reply_index += 1
            return text, None
        if not chat:
            prompt = body.get("prompt", "")
            return (prompt if isinstance(prompt, str) else "".join(map(str, prompt))), None
        messages = body.get("messages") or []
        last = next((m for m in reversed(messages) if m.get("role") in ("user", "tool")), None)
        text = message_text(last) if last else ""
        tools = body.get("tools") or []
        if tools and last is messages[-1] and last.get("role") == "user" and body.get("tool_choice") != "none":
            choice = body.get("tool_choice")
            name = (
                choice.get("function", {}).get("name")
                if isinstance(choice, dict)
                else tools[0].get("function", {}).get("name")
            )
            call = {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "index": 0,
                "function": {"name": name, "arguments": json.dumps({"input": text})},
            }
            return "", [call]
        return text, None

    def _prompt_ids(self, body: dict[str, Any], chat: bool) -> list[int]:
        if chat:
            text = render_mixtral_chat(body.get("messages") or [])
        else:
            p = body.get("prompt", "")
            text = p if isinstance(p, str) else "".join(map(str, p))
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def _account(self, prompt_ids: list[int], output_ids: list[int]) -> dict[str, Any]:
        cached = min(self.cache.match_prefix(prompt_ids), max(len(prompt_ids) - 1, 0))
        self.cache.insert(prompt_ids + output_ids)
        self.stats.prompt_tokens += len(prompt_ids)
        self.stats.generation_tokens += len(output_ids)
        self.stats.cached_tokens += cached
        details = {"cached_tokens": cached} if (self.config.cache_report and cached) else None
        return {
            "prompt_tokens": len(prompt_ids),
            "total_tokens": len(prompt_ids) + len(output_ids),
            "completion_tokens": len(output_ids),
            "prompt_tokens_details": details,
            "reasoning_tokens": 0,
        }

    @staticmethod
    def _apply_stop(text: str, stop: Any) -> tuple[str, str | None]:
        """Cut at the earliest stop string, as SGLang does, and say which one matched."""
        stops = [stop] if isinstance(stop, str) else (stop or [])
        hits = [(text.find(s), s) for s in stops if s and s in text]
        if not hits:
            return text, None
        at, which = min(hits)
        return text[:at], which

    # --- routes ------------------------------------------------------------------------------
    async def completions(self, request: Request, chat: bool) -> Response:
        """A request holds a running slot until its answer (or its stream) ends."""
        await self._enter()
        try:
            resp = await self._completions(request, chat)
        except BaseException:
            await self._leave()
            raise
        if isinstance(resp, StreamingResponse):
            resp.body_iterator = self._released(resp.body_iterator)
        else:
            await self._leave()
        return resp

    async def _completions(self, request: Request, chat: bool) -> Response:
        self.stats.requests += 1
        try:
            body = orjson.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except (orjson.JSONDecodeError, ValueError) as exc:
            return _error(f"Invalid request body: {exc}", 400, "BadRequestError")
        self.last_request = body
        if chat and not isinstance(body.get("messages"), list):
            return _error("messages: Field required", 400, "BadRequestError")
        if chat and not body["messages"]:  # SGLang's request model refuses it too (it has no last message)
            return _error("messages: List should have at least 1 item", 400, "BadRequestError")
        if not chat and "prompt" not in body:
            return _error("prompt: Field required", 400, "BadRequestError")
        cfg = self.config
        if cfg.error_rate and random.random() < cfg.error_rate:
            self.stats.errors_injected += 1
            return _error("injected fault: internal server error", 500, "InternalServerError")
        if cfg.hang:
            await asyncio.Event().wait()
        if cfg.ttft_ms:
            await asyncio.sleep(cfg.ttft_ms / 1000)

        text, tool_calls = self._answer(body, chat)
        text, matched_stop = self._apply_stop(text, body.get("stop"))
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids if text else []
        finish = "tool_calls" if tool_calls else "stop"
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(max_tokens, int) and len(ids) > max_tokens:
            ids, finish = ids[:max_tokens], "length"
            text = self.tokenizer.decode(ids)
        out_ids = ids if not tool_calls else self.tokenizer.encode(tool_calls[0]["function"]["arguments"]).ids
        usage = self._account(self._prompt_ids(body, chat), out_ids)
        n = int(body.get("n") or 1)
        rid = uuid.uuid4().hex
        created = int(time.time())
        model = body.get("model") or cfg.model
        if body.get("stream"):
            return StreamingResponse(
                self._stream(rid, created, model, chat, ids, tool_calls, finish, matched_stop, usage, n, body),
                media_type="text/event-stream",
            )
        stop_reason = matched_stop if matched_stop else (2 if finish == "stop" else None)
        if chat:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text if not tool_calls else None,
                "reasoning_content": None,
                "tool_calls": tool_calls,
            }
            choices = [
                {"index": i, "message": message, "logprobs": None, "finish_reason": finish, "matched_stop": stop_reason}
                for i in range(n)
            ]
            obj = "chat.completion"
        else:
            choices = [
                {"index": i, "text": text, "logprobs": None, "finish_reason": finish, "matched_stop": stop_reason}
                for i in range(n)
            ]
            obj = "text_completion"
        if n > 1:
            usage = {
                **usage,
                "completion_tokens": usage["completion_tokens"] * n,
                "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"] * n,
            }
        return _json(
            {
                "id": rid,
                "object": obj,
                "created": created,
                "model": model,
                "choices": choices,
                "usage": usage,
                "metadata": {"weight_version": "default"},
            }
        )

    async def _stream(
        self,
        rid: str,
        created: int,
        model: str,
        chat: bool,
        ids: list[int],
        tool_calls: list[dict] | None,
        finish: str,
        matched_stop: Any,
        usage: dict[str, Any],
        n: int,
        body: dict[str, Any],
    ) -> AsyncIterator[bytes]:
        cfg, stats = self.config, self.stats
        obj = "chat.completion.chunk" if chat else "text_completion"
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        stats.streams_started += 1
        stats.active += 1
        completed = False
        sent = 0

        def chunk(choices: list[dict], usage_: Any = None) -> bytes:
            return (
                b"data: "
                + orjson.dumps(
                    {"id": rid, "object": obj, "created": created, "model": model, "choices": choices, "usage": usage_}
                )
                + b"\n\n"
            )

        try:
            if chat:
                yield chunk(
                    [
                        {
                            "index": i,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                            "matched_stop": None,
                        }
                        for i in range(n)
                    ]
                )
            prev = ""
            pieces: list[str] = []
            for k in range(len(ids)):
                cur = self.tokenizer.decode(ids[: k + 1])
                if cur.endswith("\ufffd"):
                    continue  # incomplete UTF-8 sequence: wait for the next token, as SGLang does
                pieces.append(cur[len(prev) :])
                prev = cur
            if tool_calls:
                pieces = []
            for piece in pieces:
                if cfg.token_ms:
                    await asyncio.sleep(cfg.token_ms / 1000)
                if cfg.drop_after is not None and sent >= cfg.drop_after:
                    raise ConnectionAbortedError("injected fault: stream dropped")
                delta = {"content": piece} if chat else None
                yield chunk(
                    [
                        {
                            "index": i,
                            **({"delta": delta} if chat else {"text": piece}),
                            "logprobs": None,
                            "finish_reason": None,
                            "matched_stop": None,
                        }
                        for i in range(n)
                    ]
                )
                sent += 1
            if tool_calls:
                for i in range(n):
                    yield chunk(
                        [
                            {
                                "index": i,
                                "delta": {"role": None, "content": None, "tool_calls": [{**tool_calls[0]}]},
                                "logprobs": None,
                                "finish_reason": None,
                                "matched_stop": None,
                            }
                        ]
                    )
            stop_reason = matched_stop if matched_stop else (2 if finish == "stop" else None)
            yield chunk(
                [
                    {
                        "index": i,
                        **({"delta": {}} if chat else {"text": ""}),
                        "logprobs": None,
                        "finish_reason": finish,
                        "matched_stop": stop_reason,
                    }
                    for i in range(n)
                ]
            )
            if include_usage:
                yield chunk([], usage)
            yield b"data: [DONE]\n\n"
            completed = True
        finally:
            stats.active -= 1
            if completed:
                stats.streams_completed += 1
            else:
                stats.streams_cancelled += 1

    async def chat(self, request: Request) -> Response:
        return await self.completions(request, chat=True)

    async def text(self, request: Request) -> Response:
        return await self.completions(request, chat=False)

    async def models(self, _: Request) -> Response:
        return _json(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.config.model,
                        "object": "model",
                        "created": int(time.time()),
                        "owned_by": "sglang",
                        "root": self.config.model,
                        "max_model_len": 32768,
                    }
                ],
            }
        )

    async def health(self, _: Request) -> Response:
        return Response(status_code=200)

    async def health_generate(self, _: Request) -> Response:
        if self.config.hang:
            await asyncio.Event().wait()
        if self.config.error_rate >= 1.0:
            return Response(status_code=503)
        return Response(status_code=200)

    async def metrics(self, _: Request) -> Response:
        s, labels = self.stats, f'{{model_name="{self.config.model}"}}'
        hit = s.cached_tokens / s.prompt_tokens if s.prompt_tokens else 0.0
        lines = [
            f"sglang:prompt_tokens_total{labels} {s.prompt_tokens}",
            f"sglang:generation_tokens_total{labels} {s.generation_tokens}",
            f'sglang:cached_tokens_total{{cache_source="device",model_name="{self.config.model}"}} {s.cached_tokens}',
            f"sglang:num_requests_total{labels} {s.requests}",
            f"sglang:cache_hit_rate{labels} {hit:.4f}",
            f"sglang:num_running_reqs{labels} {s.running}",
            f"sglang:num_queue_reqs{labels} {s.queued}",
            f"sglang:token_usage{labels} {self.cache.total_tokens / max(self.config.cache_capacity_tokens, 1):.4f}",
            f"standin_errors_injected_total {s.errors_injected}",
            f"standin_streams_started_total {s.streams_started}",
            f"standin_streams_completed_total {s.streams_completed}",
            f"standin_streams_cancelled_total {s.streams_cancelled}",
            f"standin_radix_cache_tokens {self.cache.total_tokens}",
        ]
        return PlainTextResponse("\n".join(lines) + "\n")

    async def get_config(self, _: Request) -> Response:
        return _json(asdict(self.config))

    async def set_config(self, request: Request) -> Response:
        changes = orjson.loads(await request.body() or b"{}")
        unknown = set(changes) - set(asdict(self.config))
        if unknown:
            return _error(f"unknown stand-in settings: {sorted(unknown)}", 400, "BadRequestError")
        for k, v in changes.items():
            setattr(self.config, k, v)
        if changes.get("reset_cache") or "cache_capacity_tokens" in changes:
            self.cache = RadixCache(self.config.cache_capacity_tokens)
        self._reply_index = 0
        return _json(asdict(self.config))

    async def get_last_request(self, _: Request) -> Response:
        """The last request body exactly as received (stand-in only: what the model saw)."""
        return _json(self.last_request or {})

    async def flush_cache(self, _: Request) -> Response:
        # SGLang's /flush_cache.
        self.cache.reset()
        return PlainTextResponse("Cache flushed.\n")


def create_standin_app(config: StandinConfig | None = None) -> Starlette:
    s = Standin(config or StandinConfig())
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", s.chat, methods=["POST"]),
            Route("/v1/completions", s.text, methods=["POST"]),
            Route("/v1/models", s.models, methods=["GET"]),
            Route("/health", s.health, methods=["GET"]),
            Route("/health_generate", s.health_generate, methods=["GET"]),
            Route("/metrics", s.metrics, methods=["GET"]),
            Route("/flush_cache", s.flush_cache, methods=["POST", "GET"]),
            Route("/standin/config", s.get_config, methods=["GET"]),
            Route("/standin/config", s.set_config, methods=["POST"]),
            Route("/standin/last_request", s.get_last_request, methods=["GET"]),
        ]
    )
    app.state.standin = s
    return app
