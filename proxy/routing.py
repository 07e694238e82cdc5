"""Model groups, retries and fallbacks, following LiteLLM's `router_settings` semantics.

A request for model group G tries G's deployments (each up to 1 + num_retries times on retryable
errors), then each group listed in `fallbacks` for G, in order. A connection error, timeout or
5xx moves on; a 4xx that is the caller's fault (400, 401, 404, 422) is returned at once. For
streams, the switch can only happen before the first event reached the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .backends import Backend, BackendError, make_backend
from .metrics import METRICS
from .settings import GatewayConfig

#: Residency hook: the body a backend may receive, or raise to refuse it.
Gate = Callable[[Backend, dict[str, Any]], dict[str, Any]]


@dataclass
class Attempt:
    backend: str
    reason: str


@dataclass
class RouteResult:
    backend: Backend
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def fallback_reason(self) -> str | None:
        return self.attempts[-1].reason if self.attempts else None


@dataclass
class StreamStart:
    """A stream whose first event has arrived; `events` yields the rest."""

    result: RouteResult
    first: dict[str, Any]
    events: AsyncIterator[dict[str, Any]]


class Router:
    def __init__(self, config: GatewayConfig) -> None:
        rs = config.router_settings
        self.num_retries = rs.num_retries
        self.fallbacks = rs.fallback_map()
        self.groups: dict[str, list[Backend]] = {}
        for d in config.model_list:
            self.groups.setdefault(d.model_name, []).append(make_backend(d, rs.timeout))

    @property
    def backends(self) -> list[Backend]:
        return [b for group in self.groups.values() for b in group]

    async def start(self) -> None:
        for b in self.backends:
            await b.start()

    async def close(self) -> None:
        for b in self.backends:
            await b.close()

    def plan(self, model: str) -> list[Backend]:
        """Backends to try for `model`, in order; NotFound if no such group."""
        if model not in self.groups:
            raise errors.NotFound(
                "The model named in 'model' does not exist or is not served by this gateway",
                param="model",
                code="model_not_found",
            )
        order = list(self.groups[model])
        for fb in self.fallbacks.get(model, []):
            order.extend(self.groups.get(fb, []))
        return order

    def _final_error(self, last: BackendError | None, attempts: list[Attempt]) -> errors.GatewayError:
        tried = ", ".join(f"{a.backend}: {a.reason}" for a in attempts)
        if last is not None and last.timeout:
            return errors.UpstreamTimeout(f"All backends timed out ({tried})")
        return errors.UpstreamError(f"All backends failed ({tried})")

    @staticmethod
    def _client_error(exc: BackendError) -> errors.GatewayError:
        msg = exc.upstream_message or exc.reason
        cls = {
            400: errors.BadRequest,
            401: errors.UpstreamError,
            404: errors.BadRequest,
            413: errors.PayloadTooLarge,
            422: errors.Unprocessable,
        }.get(exc.status or 0, errors.BadRequest)
        return cls(f"Backend rejected the request: {msg}")

    def _failed(self, backend: Backend, exc: BackendError, attempts: list[Attempt]) -> BackendError:
        """Count a failed attempt; re-raise at once when the caller is at fault (no fallback)."""
        METRICS.backend_errors.labels(backend.id, "timeout" if exc.timeout else str(exc.status or "connection")).inc()
        if not exc.retryable:
            raise self._client_error(exc) from None
        attempts.append(Attempt(backend.id, exc.reason))
        return exc

    @staticmethod
    def _body_for(backend: Backend, body: dict[str, Any], gate: Gate | None, attempts: list[Attempt]) -> dict[str, Any]:
        """What this backend may receive (residency rules); a refusal names the failures before it."""
        if gate is None:
            return body
        try:
            return gate(backend, body)
        except errors.GatewayError as exc:
            if attempts:
                exc.message += " (after: " + ", ".join(f"{a.backend}: {a.reason}" for a in attempts) + ")"
            raise

    async def request(
        self, model: str, kind: str, body: dict[str, Any], gate: Gate | None = None
    ) -> tuple[dict[str, Any], RouteResult]:
        attempts: list[Attempt] = []
        last: BackendError | None = None
        for backend in self.plan(model):
            send = self._body_for(backend, body, gate, attempts)
            for _ in range(1 + self.num_retries):
                try:
                    out = await backend.request(kind, send)
                    return out, RouteResult(backend, attempts)
                except BackendError as exc:
                    last = self._failed(backend, exc, attempts)
        raise self._final_error(last, attempts)

    async def open_stream(self, model: str, kind: str, body: dict[str, Any], gate: Gate | None = None) -> StreamStart:
        attempts: list[Attempt] = []
        last: BackendError | None = None
        for backend in self.plan(model):
            send = self._body_for(backend, body, gate, attempts)
            for _ in range(1 + self.num_retries):
                events = backend.stream(kind, send).__aiter__()
                try:
                    first = await asyncio.wait_for(events.__anext__(), backend.stream_timeout)
                    return StreamStart(RouteResult(backend, attempts), first, events)
                except (BackendError, asyncio.TimeoutError, StopAsyncIteration) as exc:
                    await events.aclose()
                    err = (
                        exc
                        if isinstance(exc, BackendError)
                        else BackendError(
                            f"timeout after {backend.stream_timeout:g}s"
                            if isinstance(exc, asyncio.TimeoutError)
                            else "empty stream",
                            timeout=isinstance(exc, asyncio.TimeoutError),
                        )
                    )
                    last = self._failed(backend, err, attempts)
        raise self._final_error(last, attempts)
