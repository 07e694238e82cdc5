"""Fault scenarios under load, shared by `tests/chaos/` (which asserts) and `bench/chaos.py` (which
prints the table). Everything runs on loopback: a real Redis server (or the embedded Valkey), CPU
stand-ins for SGLang, the gateway as a subprocess. Each scenario is bounded by a deadline and
stops by itself.

Every request carries its own `x-request-id`, so the audit stream can be checked record by record:
each request sent must leave exactly one record, whether it was answered or refused.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

from procs import Gateway, RedisProc, Standin, gateway_config

HEADERS = {"Authorization": f"Bearer {Gateway.KEY}"}
#: A prompt with PII: the vault (Redis) is on the path of every request.
PROMPT = "Please draft a reply to Mr. Ivo Petrakis, ivo.petrakis@example.org, about order {i}."


@dataclass
class Row:
    """One scenario's outcome: what was sent, what came back, what the audit holds."""

    scenario: str
    sent: int = 0
    answered: int = 0  # 200 with an answer
    failed_as_configured: int = 0  # the documented error for the fault (OpenAI error JSON, expected status)
    unexpected: list[str] = field(default_factory=list)  # anything else: a wrong status, a hang, a bad body
    audit_expected: int = 0
    audit_found: int = 0
    audit_duplicates: int = 0
    recovery_s: float | None = None  # first success after the fault ended, seconds
    max_latency_s: float = 0.0
    notes: str = ""

    @property
    def ok(self) -> bool:
        return not self.unexpected and self.audit_found == self.audit_expected and not self.audit_duplicates


@dataclass
class Outcome:
    rid: str
    status: int | str
    elapsed: float
    at: float
    error_code: str | None = None


class Load:
    """`workers` threads sending PII-bearing chat requests until stopped; each outcome is kept."""

    def __init__(
        self,
        gateway: Gateway,
        tag: str,
        workers: int = 4,
        timeout: float = 15.0,
        stream: bool = False,
        prompt: str = PROMPT,
    ):
        self.gateway, self.tag, self.workers, self.timeout, self.stream = gateway, tag, workers, timeout, stream
        self.prompt = prompt  # formatted with the request id: every prompt is fresh
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._n = 0
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _next_id(self) -> str:
        with self._lock:
            self._n += 1
            return f"{self.tag}-{self._n:06d}"

    def one(self, client: httpx.Client) -> Outcome:
        rid = self._next_id()
        body: dict[str, Any] = {
            "model": "mixtral",
            "messages": [{"role": "user", "content": self.prompt.format(i=rid)}],
        }
        start = time.monotonic()
        try:
            if self.stream:
                body["stream"] = True
                with client.stream(
                    "POST", "/v1/chat/completions", json=body, headers={**HEADERS, "x-request-id": rid}
                ) as r:
                    raw = r.read()
                    status: int | str = r.status_code
                    if status == 200 and b"data: [DONE]" not in raw:
                        status = "stream-cut"
                    code = _error_code(raw) if r.status_code != 200 else None
                    if status == 200 and b'"error"' in raw:
                        status, code = "stream-error", _stream_error_code(raw)
            else:
                r = client.post("/v1/chat/completions", json=body, headers={**HEADERS, "x-request-id": rid})
                status, code = r.status_code, (_error_code(r.content) if r.status_code != 200 else None)
        except httpx.HTTPError as exc:
            status, code = type(exc).__name__, None
        out = Outcome(rid, status, time.monotonic() - start, time.monotonic(), code)
        with self._lock:
            self.outcomes.append(out)
        return out

    def _run(self) -> None:
        with httpx.Client(base_url=self.gateway.url, timeout=self.timeout) as client:
            while not self._stop.is_set():
                self.one(client)
                time.sleep(0.01)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)


def _error_code(raw: bytes) -> str | None:
    try:
        err = orjson.loads(raw)["error"]
        return str(err.get("code") or err.get("type"))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return "not-openai-error-json"


def _stream_error_code(raw: bytes) -> str | None:
    for line in raw.splitlines():
        if line.startswith(b"data: {") and b'"error"' in line:
            return _error_code(line[6:])
    return None


def audit_ids(url: str, prefix: str = "mixguard:") -> Counter[str]:
    """Request ids of the records in the audit stream, with their counts."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    ids: Counter[str] = Counter()
    for _, fields in client.xrange(f"{prefix}audit"):
        ids[orjson.loads(fields[b"r"]).get("id", "")] += 1
    return ids


def settle_audit(url: str, expected: set[str], timeout: float = 15.0) -> Counter[str]:
    """Wait until every expected record is in the stream (the spool replays within seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        ids = audit_ids(url)
        if expected <= set(ids) or time.monotonic() > deadline:
            return ids
        time.sleep(0.25)


def judge(
    row: Row, outcomes: list[Outcome], allowed: dict[int | str, set[str | None]], url: str, fault_end: float | None
) -> Row:
    """Fill `row` from the outcomes: `allowed` maps a status to the error codes that fault may cause."""
    row.sent = len(outcomes)
    for o in outcomes:
        row.max_latency_s = max(row.max_latency_s, o.elapsed)
        if o.status == 200:
            row.answered += 1
            if fault_end is not None and o.at >= fault_end and row.recovery_s is None:
                row.recovery_s = round(o.at - fault_end, 2)
        elif o.status in allowed and o.error_code in allowed[o.status]:
            row.failed_as_configured += 1
        else:
            row.unexpected.append(f"{o.rid}: {o.status} {o.error_code}")
    expected = {o.rid for o in outcomes if isinstance(o.status, int) or o.status.startswith("stream")}
    ids = settle_audit(url, expected)
    row.audit_expected = len(expected)
    row.audit_found = len(expected & set(ids))
    row.audit_duplicates = sum(1 for rid in expected if ids[rid] > 1)
    return row


@contextmanager
def stack(
    redis_url: str | None = None,
    extra: dict[str, Any] | None = None,
    router: dict[str, Any] | None = None,
    fallback: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[Gateway, Standin, Standin | None]]:
    """A gateway in front of a stand-in (and a second one as fallback group)."""
    primary = Standin()
    second = Standin() if fallback else None
    fallbacks = (
        [{"id": "hosted", "params": {"model": "openai/mixtral", "api_base": f"{second.url}/v1"}}] if second else None
    )
    gateway = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"{primary.url}/v1"},
            fallbacks=fallbacks,
            redis_url=redis_url,
            extra=extra,
            router=router,
        ),
        env=env,
    )
    try:
        yield gateway, primary, second
    finally:
        gateway.stop()
        primary.stop()
        if second is not None:
            second.stop()


UNAVAILABLE: dict[int | str, set[str | None]] = {503: {"guardrail_unavailable", "redis_unavailable"}}


def redis_fault(kind: str, seconds: float = 3.0, before: float = 1.5, after: float = 6.0) -> Row:
    """External Redis (AOF on) under load: SIGSTOP for `seconds` then SIGCONT, or SIGKILL then a
    restart on the same port after `seconds`. Requests during the fault get a quick 503; after it,
    requests succeed again and every record written meanwhile reaches the stream from the spool."""
    server = RedisProc(persist=True).start()
    try:
        with stack(server.url) as (gateway, _, _):
            with Load(gateway, f"redis-{kind}") as load:
                time.sleep(before)
                assert server.proc is not None
                if kind == "sigstop":
                    server.proc.send_signal(signal.SIGSTOP)
                    time.sleep(seconds)
                    server.proc.send_signal(signal.SIGCONT)
                else:
                    server.proc.send_signal(signal.SIGKILL)
                    server.proc.wait(5)
                    time.sleep(seconds)
                    server.start()
                fault_end = time.monotonic()
                ready_during = _ready(gateway)
                time.sleep(after)
            row = judge(Row(f"redis {kind} {seconds:g} s"), load.outcomes, UNAVAILABLE, server.url, fault_end)
            row.notes = f"readiness right after: {ready_during}"
            return row
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGCONT)
        server.stop()


def _ready(gateway: Gateway) -> str:
    try:
        r = httpx.get(gateway.url + "/health/ready", timeout=5).json()
        return str(r.get("checks", {}).get("redis", {}).get("reason"))
    except httpx.HTTPError as exc:
        return type(exc).__name__


def backend_fault(kind: str, seconds: float = 4.0) -> Row:
    """The primary stand-in fails (`error`: every call 500), hangs (`hang`) or cuts streams after a
    few tokens (`drop`), with a fallback group configured. Errors and hangs are answered by the
    fallback; a cut stream ends with an error event (the caller already has tokens: no switch)."""
    server = RedisProc().start()
    try:
        with stack(server.url, fallback=True, router={"timeout": 1}) as (gateway, primary, _):
            stream = kind == "drop"
            with Load(gateway, f"backend-{kind}", workers=4, stream=stream) as load:
                time.sleep(1.0)
                primary.configure(
                    **{"error": {"error_rate": 1.0}, "hang": {"hang": True}, "drop": {"drop_after": 2}}[kind]
                )
                time.sleep(seconds)
                primary.configure(error_rate=0.0, hang=False, drop_after=None)
                fault_end = time.monotonic()
                time.sleep(2.0)
            allowed: dict[int | str, set[str | None]] = (
                {"stream-error": {"upstream_error", "api_error", "stream_interrupted"}, "stream-cut": {None}}
                if stream
                else {}
            )
            return judge(Row(f"backend {kind} {seconds:g} s"), load.outcomes, allowed, server.url, fault_end)
    finally:
        server.stop()


def policy_corrupted(seconds: float = 3.0) -> Row:
    """A policy file is overwritten with broken YAML during traffic and a reload is asked for: the
    reload is refused, the last good policies stay active (PII still masked), nothing fails."""
    server = RedisProc().start()
    try:
        import shutil
        import tempfile

        from procs import ROOT

        pdir = Path(tempfile.mkdtemp(prefix="mg-chaos-policies-"))
        for f in (ROOT / "policies").glob("*.yaml"):
            shutil.copy(f, pdir / f.name)
        with stack(server.url, extra={"policies_dir": str(pdir)}) as (gateway, primary, _):
            with Load(gateway, "policy-corrupt") as load:
                time.sleep(1.0)
                (pdir / "default.yaml").write_text("name: default\npii: {enabled: [\n")
                r = httpx.post(
                    gateway.url + "/admin/policies/reload",
                    headers={"Authorization": f"Bearer {Gateway.ADMIN}"},
                    timeout=15,
                )
                time.sleep(seconds)
                seen = primary.last_request()
            row = judge(Row("policy file corrupted + reload"), load.outcomes, {}, server.url, None)
            leaked = "ivo.petrakis@example.org" in orjson.dumps(seen).decode()
            row.notes = f"reload answered {r.status_code}; raw e-mail reached the backend: {leaked}"
            if r.status_code < 400 or leaked:
                row.unexpected.append(row.notes)
            return row
    finally:
        server.stop()


def pii_worker_killed() -> Row:
    """A worker process for long texts is killed while long prompts are analysed: requests in flight
    on it get a clear 503, the pool is started again, and later requests succeed."""
    server = RedisProc().start()
    try:
        with stack(server.url, extra={"pii": {"long_text_processes": 2, "long_text_chars": 600}}) as (gw, _, _):
            long_prompt = PROMPT + " " + "The delivery was late and the box was damaged. " * 30
            load = Load(gw, "pii-worker", prompt=long_prompt)
            deadline = time.monotonic() + 90
            while len(_pii_workers(gw)) < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(5.0)  # each worker loads spaCy
            with httpx.Client(base_url=gw.url, timeout=60) as c:
                load.one(c)
            with load:
                time.sleep(1.0)
                killed = _kill_pii_worker(gw)
                fault_end = time.monotonic()
                time.sleep(10.0)
            row = judge(Row("PII worker process killed"), load.outcomes, UNAVAILABLE, server.url, fault_end)
            row.notes = f"worker killed: {killed}"
            if not killed:
                row.unexpected.append("no worker process found to kill")
            return row
    finally:
        server.stop()


def _pii_workers(gateway: Gateway) -> list[int]:
    """Child processes of the gateway that run Python's multiprocessing spawn (the PII workers)."""
    assert gateway.proc is not None
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text().split()
            cmdline = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[3]) == gateway.proc.pid and b"spawn_main" in cmdline:
            out.append(int(p.name))
    return out


def _kill_pii_worker(gateway: Gateway) -> bool:
    """SIGKILL one PII worker process of the gateway."""
    workers = _pii_workers(gateway)
    if workers:
        os.kill(workers[0], signal.SIGKILL)
    return bool(workers)


SCENARIOS: dict[str, Callable[[], Row]] = {
    "redis-sigstop": lambda: redis_fault("sigstop"),
    "redis-sigkill": lambda: redis_fault("sigkill"),
    "backend-error": lambda: backend_fault("error"),
    "backend-hang": lambda: backend_fault("hang"),
    "backend-drop": lambda: backend_fault("drop"),
    "policy-corrupted": policy_corrupted,
    "pii-worker-killed": pii_worker_killed,
}
