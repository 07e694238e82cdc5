"""Which deployments may serve now: cooldowns after failures and active health checks.

Cooldowns follow LiteLLM's `router_settings`: a deployment that fails (timeout, connection error,
429, 5xx; never a 4xx that is the caller's fault) more than `allowed_fails` times within a minute
is left out for `cooldown_time` seconds. Active checks (`health_check_interval`) call each SGLang
deployment's `/health_generate`, which runs a one-token generation (`/health` only says the
process is up, and a hung scheduler still answers it): a failed check takes the deployment out
until a check passes, so a hung replica stays out for as long as it hangs, and comes back on the
first check that passes once its cooldown is over. The same round reads `/metrics`
(proxy/sglang_signals.py), whose queue depth the balancer adds to a deployment's load.

A deployment that is out is not dropped: the router tries it after every available one (in the
group and its fallbacks), so a group whose only deployment is cooling still gets its requests
there instead of an instant error (LiteLLM skips cooldowns for such groups for the same reason).

All state changes happen on the event loop; nothing here takes a lock or makes a network call on a
request's path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .sglang_signals import SGLangSignals, parse

log = logging.getLogger("mixguard.health")

#: LiteLLM counts a deployment's failures per minute
FAIL_WINDOW_S = 60.0


@dataclass(eq=False)
class DeploymentState:
    """What the router knows of one deployment now: load, failures, cooldown, last active check."""

    name: str
    weight: float = 1.0
    outstanding: int = 0  # requests this gateway has in flight there (streams until they end)
    fails: deque[float] = field(default_factory=deque)  # monotonic times of recent failures
    cooldown_until: float = 0.0
    cooldowns: int = 0  # times it was taken out (after failures or a failed check)
    last_failure: str | None = None
    probe_ok: bool | None = None  # None: never checked
    probe_reason: str = "not checked"
    probe_at: float | None = None
    signals: SGLangSignals | None = None  # the last scrape of its /metrics, None when it failed

    def available(self, now: float) -> bool:
        return now >= self.cooldown_until and self.probe_ok is not False

    def load(self) -> float:
        """Requests in flight from here plus requests waiting in its queue (from anyone)."""
        queued = self.signals.queued if self.signals is not None else None
        return self.outstanding + (queued or 0.0)

    def why_out(self, now: float) -> str:
        if self.probe_ok is False:
            return f"failing health check: {self.probe_reason}"
        return f"cooling down for {self.cooldown_until - now:.1f}s after: {self.last_failure or 'failures'}"


class Cooldowns:
    """The rules that move a deployment out and back in (LiteLLM's allowed_fails / cooldown_time)."""

    def __init__(self, allowed_fails: int, cooldown_time: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.allowed_fails = allowed_fails
        self.cooldown_time = cooldown_time
        self.clock = clock

    def failed(self, st: DeploymentState, reason: str) -> bool:
        """Count a failed attempt; True when it just put the deployment in cooldown."""
        st.last_failure = reason
        if self.cooldown_time <= 0:
            return False
        now = self.clock()
        fails = st.fails
        fails.append(now)
        while fails and fails[0] <= now - FAIL_WINDOW_S:
            fails.popleft()
        if len(fails) <= self.allowed_fails:
            return False
        fails.clear()
        st.cooldown_until = now + self.cooldown_time
        st.cooldowns += 1
        log.warning("deployment %s in cooldown for %gs after %s", st.name, self.cooldown_time, reason)
        return True

    def succeeded(self, st: DeploymentState) -> None:
        """A served request: the failures before it no longer count, and it is evidence of health."""
        if st.fails:
            st.fails.clear()
        if st.cooldown_until:
            st.cooldown_until = 0.0
        if st.probe_ok is False:
            st.probe_ok, st.probe_reason = True, "served a request"

    def probed(self, st: DeploymentState, ok: bool, reason: str) -> None:
        """Record an active check; a failed one takes the deployment out until a check passes."""
        if st.probe_ok is not False and not ok:
            st.cooldowns += 1
            log.warning("deployment %s failed its health check: %s", st.name, reason)
        elif st.probe_ok is False and ok:
            log.info("deployment %s passed its health check again", st.name)
        st.probe_ok, st.probe_reason, st.probe_at = ok, reason, self.clock()


class Checkable(Protocol):
    """A deployment the monitor can check (proxy.backends.OpenAICompatibleBackend)."""

    async def probe(self, timeout: float = ...) -> tuple[bool, str]: ...
    async def metrics_text(self, timeout: float) -> str | None: ...


class HealthMonitor:
    """The background task of active checks: every `interval` seconds, each target's
    /health_generate and /metrics, all targets at once. `wake()` starts a round early (the router
    calls it when a deployment enters cooldown, so a hung one is confirmed out without waiting)."""

    def __init__(
        self,
        targets: Sequence[tuple[Checkable, DeploymentState]],
        cooldowns: Cooldowns,
        interval: float,
        timeout: float,
    ) -> None:
        self.targets = list(targets)
        self.cooldowns = cooldowns
        self.interval = interval
        self.timeout = timeout
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def fresh_for(self) -> float:
        """How long a check's result stands for readiness before a new one is due."""
        return 2 * self.interval + self.timeout

    def start(self) -> None:
        if self.targets and self.interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def check(self, target: Checkable, st: DeploymentState) -> None:
        try:
            ok, reason = await target.probe(self.timeout)
            self.cooldowns.probed(st, ok, reason)
            text = await target.metrics_text(self.timeout)
            st.signals = parse(text) if text else None
        except Exception as exc:  # one deployment's odd answer must not end the checks of all
            log.error("health check of %s failed: %s", st.name, type(exc).__name__)
            st.signals = None

    async def check_all(self) -> None:
        await asyncio.gather(*(self.check(t, st) for t, st in self.targets))

    async def _run(self) -> None:
        while True:
            await self.check_all()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()


def remaining(st: DeploymentState, now: float) -> float:
    """Seconds until a cooling deployment may serve again (inf while its checks fail)."""
    if st.probe_ok is False:
        return math.inf
    return max(0.0, st.cooldown_until - now)
