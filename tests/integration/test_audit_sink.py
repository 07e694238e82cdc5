"""The audit sink forwards records as they are written, exactly as stored (masked, signed): a
webhook receiver and a syslog receiver on loopback get them, and no raw PII value is in anything
they received, on every path (masked, streamed, blocked). Drops are bounded and counted."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import orjson
import pytest
import redis

from procs import Gateway, RedisProc, free_port, gateway_config

NAME, EMAIL, PHONE, SSN = "Cassius Wetherby-Lowe", "cassius.wl@example.org", "(415) 555-0199", "536-22-8745"
VALUES = [NAME, "Wetherby", EMAIL, PHONE, "555-0199", SSN]
PROMPT = f"I am {NAME}, mail {EMAIL}, phone {PHONE}."
SECRET = "sink-test-secret"


class WebhookReceiver:
    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.bodies.append((body, self.headers.get("x-mixguard-signature", "")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/audit"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def records(self) -> dict[str, dict]:
        return {r["id"]: r for body, _ in self.bodies for r in orjson.loads(body)["records"]}


def _send(g: Gateway, content: str, **kw) -> str:
    rid = "sink-" + uuid.uuid4().hex[:12]
    body = {"model": "mixtral", "messages": [{"role": "user", "content": content}], **kw}
    r = httpx.post(
        g.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {Gateway.KEY}", "x-request-id": rid},
        json=body,
        timeout=30,
    )
    assert r.status_code in (200, 400), r.text
    return rid


def _until(cond, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not cond():
        time.sleep(0.1)
    assert cond()


@pytest.fixture
def redis_proc():
    rp = RedisProc().start()
    yield rp
    rp.stop()


def test_webhook_gets_each_record_as_stored_signed_and_without_raw_pii(primary, redis_proc):
    rx = WebhookReceiver()
    cfg = gateway_config(primary.params(), redis_url=redis_proc.url)
    cfg["mixguard"]["audit"]["sink"] = {"type": "webhook", "url": rx.url, "secret_env": "MG_SINK_SECRET", "batch": 2}
    g = Gateway(cfg, env={"MG_SINK_SECRET": SECRET, "MIXGUARD_AUDIT_KEY": "sink-test"})
    try:
        ids = [
            _send(g, PROMPT),
            _send(g, PROMPT, stream=True),
            _send(g, PROMPT + f" My SSN is {SSN}."),  # the default policy blocks US_SSN: 400
        ]
        _until(lambda: set(ids) <= set(rx.records()))
        # every body is signed with the configured secret
        for body, sig in rx.bodies:
            assert sig == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        # exactly the records in the stream, field for field
        stored = {
            orjson.loads(f[b"r"])["id"]: orjson.loads(f[b"r"])
            for _, f in redis.Redis.from_url(redis_proc.url).xrange("mixguard:audit")
        }
        got = rx.records()
        for rid in ids:
            assert got[rid] == stored[rid]
        assert got[ids[0]]["prompt"] and "<PERSON_1>" in got[ids[0]]["prompt"]
        assert got[ids[2]]["outcome"] == "blocked"
        # no raw value left through the sink, in any byte it received
        blob = b"".join(body for body, _ in rx.bodies)
        for v in VALUES:
            assert v.encode() not in blob, v
        assert g.metric("mixguard_audit_sink_records_total", result="sent") >= 3
    finally:
        g.stop()
        rx.server.shutdown()


def test_syslog_gets_rfc5424_messages_without_raw_pii(primary, redis_proc):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    cfg = gateway_config(primary.params(), redis_url=redis_proc.url)
    cfg["mixguard"]["audit"]["sink"] = {"type": "syslog", "address": f"127.0.0.1:{sock.getsockname()[1]}"}
    g = Gateway(cfg, env={"MIXGUARD_AUDIT_KEY": "sink-test"})
    try:
        rid = _send(g, PROMPT)
        messages: list[bytes] = []
        deadline = time.time() + 15
        while time.time() < deadline and not any(rid.encode() in m for m in messages):
            try:
                messages.append(sock.recv(65535))
            except TimeoutError:
                pass
        mine = [m for m in messages if rid.encode() in m]
        assert len(mine) == 1
        head, _, payload = mine[0].partition(b" audit - ")
        assert head.startswith(b"<110>1 ") and b" mixguard " in head
        rec = orjson.loads(payload)
        assert rec["id"] == rid and isinstance(rec["mac"], str) and "<EMAIL_ADDRESS_1>" in rec["prompt"]
        for v in VALUES:
            assert v.encode() not in b"".join(messages), v
    finally:
        g.stop()
        sock.close()


def test_a_full_queue_drops_and_an_unreachable_receiver_fails_both_counted(monkeypatch):
    from proxy.audit import sink as sink_mod

    monkeypatch.setattr(sink_mod, "RETRIES", (0.01,))

    def count(result: str) -> float:
        return sink_mod.SINK_RECORDS.labels(result)._value.get()

    async def run() -> None:
        dropped, failed = count("dropped"), count("failed")
        s = sink_mod.WebhookSink(f"http://127.0.0.1:{free_port()}/nothing", b"k", queue_max=3, batch=10, timeout_s=1)
        s.offer([{"id": str(i)} for i in range(5)])  # 2 over the bound, before the task even runs
        assert count("dropped") - dropped == 2
        s.start()
        await s.close()
        assert count("failed") - failed == 3  # nobody listens: sent twice, then counted

    asyncio.run(run())
