"""Model groups, balancing, retries, cooldowns and fallbacks, following LiteLLM's `router_settings`.

A request for model group G tries G's deployments in the order the balancer gives for its
conversation (proxy/balancer.py: `routing_strategy`), each up to 1 + num_retries times on
retryable errors, then the deployments of each group listed in `fallbacks` for G, in order;
deployments that are out (cooldown, failed health check: proxy/deployment_health.py) come after
all the others. A connection error, timeout, 429 or 5xx moves on and counts towards the
deployment's `allowed_fails`; a 4xx that is the caller's fault (400, 401, 404, 422) is returned at
once. For streams, the switch can only happen before the first event reached the caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .backends import Backend, BackendError, make_backend, routing_key
from .balancer import Balancer, conversation_key
from .deployment_health import Cooldowns, DeploymentState, HealthMonitor, remaining
from .metrics import METRICS, observe_deployments
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


class _TrackedStream:
    """A backend's stream after its first event: the deployment counts the request as in flight until
    the stream ends or is closed, and a stream that breaks counts as a failure of the deployment."""

    __slots__ = ("_done", "_events", "_router", "_state")

    def __init__(self, events: AsyncIterator[dict[str, Any]], router: Router, state: DeploymentState) -> None:
        self._events, self._router, self._state, self._done = events, router, state, False

    def _release(self) -> None:
        if not self._done:
            self._done = True
            self._state.outstanding -= 1

    def __aiter__(self) -> _TrackedStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return await self._events.__anext__()
        except StopAsyncIteration:
            self._release()
            raise
        except BackendError as exc:
            self._release()
            self._router._count_failure(self._state, exc)
            raise

    async def aclose(self) -> None:
        self._release()
        await self._events.aclose()  # type: ignore[attr-defined]

    def __del__(self) -> None:  # a stream dropped without aclose() must not stay counted as in flight
        self._release()


class Router:
    def __init__(self, config: GatewayConfig) -> None:
        rs = config.router_settings
        self.num_retries = rs.num_retries
        self.fallbacks = rs.fallback_map()
        self.strategy = rs.routing_strategy
        self.groups: dict[str, list[Backend]] = {}
        self.states: dict[Backend, DeploymentState] = {}
        for d in config.model_list:
            backend = make_backend(d, rs.timeout)
            self.groups.setdefault(d.model_name, []).append(backend)
            self.states[backend] = DeploymentState(backend.id, weight=d.litellm_params.weight or 1.0)
        self.cooldowns = Cooldowns(rs.allowed_fails, rs.cooldown_time)
        self._balancers = {
            name: Balancer([self.states[b] for b in group], rs.routing_strategy) for name, group in self.groups.items()
        }
        self._backend_of = {st: b for b, st in self.states.items()}
        self._picks: dict[tuple[str, str, str], Any] = {}
        self.health_timeout = rs.health_check_timeout
        self.monitor = HealthMonitor(
            [(b, self.states[b]) for b in self.backends if b.checked],
            self.cooldowns,
            rs.health_check_interval,
            rs.health_check_timeout,
        )
        observe_deployments(self)  # deployment state and SGLang's signals appear on /metrics

    @property
    def backends(self) -> list[Backend]:
        return [b for group in self.groups.values() for b in group]

    def deployments(self) -> Iterator[tuple[str, DeploymentState]]:
        """(model group, state) of every deployment, for /metrics."""
        for name, group in self.groups.items():
            for b in group:
                yield name, self.states[b]

    async def start(self) -> None:
        for b in self.backends:
            await b.start()
        self.monitor.start()

    async def close(self) -> None:
        await self.monitor.close()
        for b in self.backends:
            await b.close()

    def plan(self, model: str, key: str = "") -> list[Backend]:
        """Backends to try for `model`, in order: the group's available deployments as its balancer
        orders them for this conversation key, then each fallback group's, then every deployment that
        is out, soonest back first. NotFound if no such group."""
        if model not in self.groups:
            raise errors.NotFound(
                "The model named in 'model' does not exist or is not served by this gateway",
                param="model",
                code="model_not_found",
            )
        now = time.monotonic()
        ready, out, how = self._balancers[model].order(key, now)
        if ready:
            pick = (model, ready[0].name, how)
            counter = self._picks.get(pick)
            if counter is None:  # labels() takes a lock and builds a key: once per series, not per request
                counter = self._picks[pick] = METRICS.balancer_picks.labels(*pick)
            counter.inc()
        for fb in self.fallbacks.get(model, []):
            fb_ready, fb_out, _ = self._balancers[fb].order(key, now)
            ready += fb_ready
            out += fb_out
        if out:
            out.sort(key=lambda st: remaining(st, now))
        backend_of = self._backend_of
        return [backend_of[st] for st in ready] + [backend_of[st] for st in out]

    def _result(self, model: str, backend: Backend, attempts: list[Attempt]) -> RouteResult:
        """A fallback group's answer names the requested group's deployments that were passed over
        for being out (their reason leads; failed attempts follow)."""
        group = self.groups[model]
        if backend not in group:
            now = time.monotonic()
            tried = {a.backend for a in attempts}
            skipped = [
                Attempt(b.id, self.states[b].why_out(now))
                for b in group
                if b.id not in tried and not self.states[b].available(now)
            ]
            attempts = skipped + attempts
        return RouteResult(backend, attempts)

    def _count_failure(self, state: DeploymentState, exc: BackendError) -> bool:
        """A failed attempt counts towards allowed_fails; True when the deployment just went out."""
        out = self.cooldowns.failed(state, exc.reason)
        if out:
            self.monitor.wake()  # confirm with an active check at once
        return out

    async def readiness(self, backend: Backend) -> tuple[bool, str]:
        """(ok, reason) of one deployment for /health/ready: the latest active check while they run
        (else a check now: SGLang's /health_generate), and not ok while it cools down."""
        st = self.states[backend]
        now = time.monotonic()
        if self.monitor.targets and st.probe_at is not None and now - st.probe_at <= self.monitor.fresh_for:
            ok = bool(st.probe_ok)
            reason = st.probe_reason
        else:
            ok, reason = await backend.probe(self.health_timeout)
            if backend.checked and self.monitor.targets and self.monitor.interval > 0:
                self.cooldowns.probed(st, ok, reason)  # the monitor's next round brings it back
        if ok and not st.available(now):
            return False, st.why_out(now)
        return ok, reason

    def _final_error(
        self, last: BackendError | None, attempts: list[Attempt], refused: errors.GatewayError | None = None
    ) -> errors.GatewayError:
        """What the caller gets when no deployment answered: a residency refusal when one was refused
        (naming the failures of the others), else the last failure's kind."""
        if refused is not None:
            if attempts:
                refused.message += " (after: " + ", ".join(f"{a.backend}: {a.reason}" for a in attempts) + ")"
            return refused
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

    def _failed(self, backend: Backend, exc: BackendError, attempts: list[Attempt]) -> bool:
        """Count a failed attempt; re-raise at once when the caller is at fault (no fallback). True
        when the deployment is out now (no use retrying it)."""
        METRICS.backend_errors.labels(backend.id, "timeout" if exc.timeout else str(exc.status or "connection")).inc()
        if not exc.retryable:
            raise self._client_error(exc) from None
        attempts.append(Attempt(backend.id, exc.reason))
        self._count_failure(self.states[backend], exc)
        return not self.states[backend].available(time.monotonic())

    @staticmethod
    def _body_for(backend: Backend, body: dict[str, Any], gate: Gate | None) -> dict[str, Any] | errors.GatewayError:
        """What this backend may receive (residency rules), or the refusal: the deployments after it
        (one that is out comes last) may still take the request."""
        if gate is None:
            return body
        try:
            return gate(backend, body)
        except errors.GatewayError as exc:
            return exc

    async def request(
        self,
        model: str,
        kind: str,
        body: dict[str, Any],
        gate: Gate | None = None,
        conversation_id: str | None = None,
    ) -> tuple[dict[str, Any], RouteResult]:
        """The first answer of the planned deployments. `conversation_id`: the client's
        x-conversation-id (else the conversation is recognised by its opening messages)."""
        attempts: list[Attempt] = []
        last: BackendError | None = None
        refused: errors.GatewayError | None = None
        key = conversation_key(kind, body, conversation_id)
        token = routing_key.set(key)
        try:
            for backend in self.plan(model, key):
                send = self._body_for(backend, body, gate)
                if isinstance(send, errors.GatewayError):
                    refused = refused or send
                    continue
                state = self.states[backend]
                for _ in range(1 + self.num_retries):
                    state.outstanding += 1
                    try:
                        out = await backend.request(kind, send)
                    except BackendError as exc:
                        last = exc
                        if self._failed(backend, exc, attempts):
                            break
                        continue
                    finally:
                        state.outstanding -= 1
                    self.cooldowns.succeeded(state)
                    return out, self._result(model, backend, attempts)
        finally:
            routing_key.reset(token)
        raise self._final_error(last, attempts, refused)

    async def open_stream(
        self,
        model: str,
        kind: str,
        body: dict[str, Any],
        gate: Gate | None = None,
        conversation_id: str | None = None,
    ) -> StreamStart:
        """The first planned deployment whose stream sent its first event (see `request`)."""
        attempts: list[Attempt] = []
        last: BackendError | None = None
        refused: errors.GatewayError | None = None
        key = conversation_key(kind, body, conversation_id)
        token = routing_key.set(key)
        try:
            for backend in self.plan(model, key):
                send = self._body_for(backend, body, gate)
                if isinstance(send, errors.GatewayError):
                    refused = refused or send
                    continue
                state = self.states[backend]
                for _ in range(1 + self.num_retries):
                    events = backend.stream(kind, send).__aiter__()
                    state.outstanding += 1
                    try:
                        first = await asyncio.wait_for(events.__anext__(), backend.stream_timeout)
                    except (BackendError, asyncio.TimeoutError, StopAsyncIteration) as exc:
                        state.outstanding -= 1
                        await events.aclose()  # type: ignore[attr-defined]
                        last = (
                            exc
                            if isinstance(exc, BackendError)
                            else BackendError(
                                f"timeout after {backend.stream_timeout:g}s"
                                if isinstance(exc, asyncio.TimeoutError)
                                else "empty stream",
                                timeout=isinstance(exc, asyncio.TimeoutError),
                            )
                        )
                        if self._failed(backend, last, attempts):
                            break
                        continue
                    except BaseException:  # cancelled (the client went away): not the deployment's fault
                        state.outstanding -= 1
                        await events.aclose()  # type: ignore[attr-defined]
                        raise
                    self.cooldowns.succeeded(state)
                    tracked = _TrackedStream(events, self, state)
                    return StreamStart(self._result(model, backend, attempts), first, tracked)
        finally:
            routing_key.reset(token)
        raise self._final_error(last, attempts, refused)
