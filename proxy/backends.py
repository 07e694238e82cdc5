"""Clients for one deployment each: a lean HTTP client for OpenAI-compatible servers (SGLang) and
a litellm-backed client for hosted providers.

Why two: `litellm.Router.acompletion` adds about 5 ms a call (bench/overhead.py), more than the
gateway's whole latency budget, while SGLang already speaks OpenAI's protocol. litellm stays where
it earns its place: translating to Mistral, Together, Fireworks and Groq. Both raise BackendError,
which says whether the router may retry or fall back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any, ClassVar

import aiohttp
import orjson

from guardrails.request_shapes import is_connection_field

from .settings import Deployment

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}

#: sglang-router's (SGLang Model Gateway's) header for its routing key: its `manual` policy pins a key to a
#: worker. The gateway sends its conversation key (an opaque hash) in it; SGLang itself ignores it.
ROUTING_KEY_HEADER = "x-smg-routing-key"

#: The conversation key of the request being routed, set by the router around each attempt (a context
#: variable rather than a parameter: wrappers of `request`/`stream`, such as tracing, keep their signature).
routing_key: ContextVar[str | None] = ContextVar("mixguard_routing_key", default=None)


#: litellm_params keys that the lean path sends as per-deployment request defaults.
DEFAULT_PARAMS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "stop",
    "seed",
)


#: Body fields passed to litellm as keyword arguments (OpenAI's parameters, which litellm maps per provider).
LITELLM_KWARGS = frozenset(
    {
        "messages",
        "prompt",
        "suffix",
        "echo",
        "best_of",
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "seed",
        "logprobs",
        "top_logprobs",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "response_format",
        "reasoning_effort",
        "service_tier",
        "modalities",
        "prediction",
        "web_search_options",
        "verbosity",
        "safety_identifier",
        "prompt_cache_key",
        "metadata",
        "store",
    }
)


class BackendError(Exception):
    """A deployment failed. `status` is the upstream HTTP status (None: no response)."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        timeout: bool = False,
        upstream_message: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retryable = retryable
        self.timeout = timeout
        self.upstream_message = upstream_message


def _upstream_message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode(errors="replace")
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or "")[:500]
        return str(err)[:500]
    return ""


class Backend:
    """One deployment of a model group."""

    def __init__(self, deployment: Deployment, default_timeout: float) -> None:
        self.deployment = deployment
        self.id = deployment.backend_id
        p = deployment.litellm_params
        self.timeout = p.timeout or default_timeout
        self.stream_timeout = p.stream_timeout or self.timeout

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    #: whether the router's background checks (/health_generate, /metrics) apply to this deployment
    checked: ClassVar[bool] = False

    async def request(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError
        yield {}  # pragma: no cover

    async def probe(self, timeout: float = 2.0) -> tuple[bool, str]:
        """Readiness: (ok, reason)."""
        return True, "not probed (hosted provider)"

    async def metrics_text(self, timeout: float) -> str | None:
        """The deployment's Prometheus metrics, when it exports them."""
        return None


class OpenAICompatibleBackend(Backend):
    """Direct aiohttp client with a keep-alive pool; the body goes through untouched but `model`."""

    PATHS: ClassVar[dict[str, str]] = {"chat": "/chat/completions", "completions": "/completions"}
    checked = True

    def __init__(self, deployment: Deployment, default_timeout: float) -> None:
        super().__init__(deployment, default_timeout)
        p = deployment.litellm_params
        self.base = (p.api_base or "").rstrip("/")
        self.model = p.upstream_model
        self.headers = {"Content-Type": "application/json"}
        if p.api_key:
            self.headers["Authorization"] = f"Bearer {p.api_key}"
        self.session: aiohttp.ClientSession | None = None
        # As in LiteLLM, sampling params in litellm_params are defaults for every call to this
        # deployment (the caller's own value wins), e.g. a max_tokens cap for a self-hosted model.
        extra = p.model_extra or {}
        self.defaults = {k: extra[k] for k in DEFAULT_PARAMS if k in extra}

    async def start(self) -> None:
        if self.session is None:
            # Idle connections are dropped after 4 s: SGLang's server closes them after 5 s
            # (SGLANG_TIMEOUT_KEEP_ALIVE), and a request sent on one it just closed fails (the GPU run's 502s).
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4, ttl_dns_cache=300)
            self.session = aiohttp.ClientSession(
                connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(), auto_decompress=True
            )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def _url(self, kind: str) -> str:
        return self.base + self.PATHS[kind]

    async def _post(self, kind: str, body: dict[str, Any], timeout: float) -> aiohttp.ClientResponse:
        assert self.session is not None, "backend not started"
        key = routing_key.get()
        payload = orjson.dumps(
            {**self.defaults, **body, "model": self.model} if self.defaults else {**body, "model": self.model}
        )
        try:
            resp = await self.session.post(
                self._url(kind),
                data=payload,
                headers={**self.headers, ROUTING_KEY_HEADER: key} if key else self.headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(timeout, 10), sock_read=timeout),
            )
        except asyncio.TimeoutError:
            raise BackendError(f"timeout after {timeout:g}s", timeout=True) from None
        except aiohttp.ClientError as exc:
            raise BackendError(f"connection error: {type(exc).__name__}") from None
        if resp.status >= 400:
            raw = await resp.read()
            resp.release()
            raise BackendError(
                f"upstream status {resp.status}",
                status=resp.status,
                retryable=resp.status in RETRYABLE_STATUS,
                upstream_message=_upstream_message(raw),
            )
        return resp

    async def request(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            resp = await self._post(kind, body, self.timeout)
            try:
                raw = await resp.read()
            except aiohttp.ClientError as exc:
                raise BackendError(f"connection error while reading: {type(exc).__name__}") from None
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise BackendError("upstream sent invalid JSON") from None

        try:
            return await asyncio.wait_for(call(), self.timeout)
        except asyncio.TimeoutError:
            raise BackendError(f"timeout after {self.timeout:g}s", timeout=True) from None

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Parsed SSE `data:` events until `[DONE]`; raises BackendError on a broken stream."""
        resp = await asyncio.wait_for(self._post(kind, body, self.stream_timeout), self.stream_timeout)
        done = False
        try:
            while True:
                try:
                    line = await resp.content.readline()
                except asyncio.TimeoutError:
                    raise BackendError(f"stream stalled for {self.stream_timeout:g}s", timeout=True) from None
                except aiohttp.ClientError as exc:
                    raise BackendError(f"stream broken: {type(exc).__name__}") from None
                if not line:
                    break
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise BackendError("upstream sent an invalid SSE event") from None
                if isinstance(event, dict) and "error" in event and "choices" not in event:
                    raise BackendError("upstream error event", upstream_message=_upstream_message(data))
                yield event
            if not done:
                raise BackendError("stream ended before [DONE]")
        finally:
            resp.release() if done else resp.close()

    @property
    def root(self) -> str:
        """The server's address without the OpenAI API prefix (where /health and /metrics are)."""
        return self.base[:-3] if self.base.endswith("/v1") else self.base

    async def _get(self, path: str, timeout: float) -> tuple[int, bytes]:
        assert self.session is not None, "backend not started"
        async with self.session.get(self.root + path, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            return r.status, await r.read()

    async def probe(self, timeout: float = 2.0) -> tuple[bool, str]:
        """SGLang's /health_generate: a one-token generation, so a hung scheduler fails it (its /health
        still answers). Servers without it (404: vLLM, other OpenAI-compatible ones) get /health."""
        path = "/health_generate"
        try:
            status, _ = await self._get(path, timeout)
            if status == 404:
                path = "/health"
                status, _ = await self._get(path, timeout)
        except asyncio.TimeoutError:
            return False, f"GET {path}: no answer in {timeout:g}s"
        except aiohttp.ClientError as exc:
            return False, f"unreachable: {type(exc).__name__}"
        return status == 200, f"GET {path} -> {status}"

    async def metrics_text(self, timeout: float) -> str | None:
        """GET /metrics (SGLang with --enable-metrics); None when absent or unreachable."""
        try:
            status, raw = await self._get("/metrics", timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return None
        return raw.decode(errors="replace") if status == 200 else None


class LiteLLMBackend(Backend):
    """Hosted providers through litellm's SDK (provider translation, auth, error mapping)."""

    def __init__(self, deployment: Deployment, default_timeout: float) -> None:
        super().__init__(deployment, default_timeout)
        import litellm  # imported only where a hosted deployment exists: it is slow to import

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        self._litellm = litellm
        self.params = deployment.litellm_params.model_dump(exclude_none=True)

    def _call_args(self, body: dict[str, Any]) -> dict[str, Any]:
        """litellm's keyword arguments: the deployment's own settings, and from the body only the
        OpenAI parameters litellm knows; anything else rides in `extra_body` (JSON for the provider,
        never read as client configuration). Connection fields never come from a body (they are
        removed when it is parsed; this is the second lock)."""
        args: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for k, v in body.items():
            if k in ("model", "stream", "stream_options") or is_connection_field(k):
                continue
            (args if k in LITELLM_KWARGS else extra)[k] = v
        if extra:
            args["extra_body"] = extra
        args.update(self.params)
        args.pop("stream_timeout", None)
        args.pop("weight", None)  # the gateway's balancer reads it; not a provider parameter
        args["timeout"] = self.timeout
        args["num_retries"] = 0
        return args

    def _map_error(self, exc: Exception) -> BackendError:
        status = getattr(exc, "status_code", None)
        name = type(exc).__name__
        if isinstance(exc, asyncio.TimeoutError) or "Timeout" in name:
            return BackendError(f"timeout: {name}", status=status, timeout=True)
        retryable = status is None or status in RETRYABLE_STATUS or "Connection" in name
        return BackendError(
            f"{name}", status=status, retryable=retryable, upstream_message=str(getattr(exc, "message", ""))[:300]
        )

    async def request(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        fn = self._litellm.acompletion if kind == "chat" else self._litellm.atext_completion
        try:
            resp = await fn(**self._call_args(body))
        except Exception as exc:  # litellm raises its own exception family; map it once here
            raise self._map_error(exc) from None
        out = resp.model_dump(exclude_none=False)
        out.pop("_hidden_params", None)
        return out

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        fn = self._litellm.acompletion if kind == "chat" else self._litellm.atext_completion
        args = self._call_args(body)
        args["stream"] = True
        if (body.get("stream_options") or {}).get("include_usage"):
            args["stream_options"] = {"include_usage": True}
        try:
            resp = await fn(**args)
            async for chunk in resp:
                yield chunk.model_dump(exclude_none=True)
        except BackendError:
            raise
        except Exception as exc:
            raise self._map_error(exc) from None


def make_backend(deployment: Deployment, default_timeout: float) -> Backend:
    if deployment.litellm_params.openai_compatible:
        return OpenAICompatibleBackend(deployment, default_timeout)
    return LiteLLMBackend(deployment, default_timeout)
