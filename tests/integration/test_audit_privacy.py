"""No raw PII anywhere a reviewer (or an attacker) could read: the audit stream, its archive, the
spool file written while Redis is down, and the gateway's own log output, on every path."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis
import yaml

from procs import ROOT, Gateway, RedisProc, gateway_config

NAME, EMAIL, PHONE, SSN, CARD, STREET = (
    "Bartholomew Quennell",
    "b.quennell@example.net",
    "(415) 555-0132",
    "536-22-8745",
    "4111 1111 1111 1111",
    "742 Evergreen Terrace",
)
VALUES = [NAME, "Quennell", EMAIL, PHONE, "555-0132", SSN, CARD, "4111111111111111", STREET]
PROMPT = f"Hi, I am {NAME}, mail {EMAIL} or call {PHONE}. I live at {STREET}."


def test_no_pii_value_reaches_the_audit_stream_archive_spool_or_logs(primary, tmp_path):
    rp = RedisProc(persist=True).start()
    d = Path(tempfile.mkdtemp(prefix="mg-ppol-"))
    (d / "default.yaml").write_text((ROOT / "policies" / "default.yaml").read_text())
    (d / "full.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "full",
                "audit": {"content": "full"},
                "pii": {"entities": {"US_SSN": "block", "CREDIT_CARD": "mask"}},
                "topics": {"deny": [{"name": "weapons", "keywords": ["pipe bomb"]}]},
            }
        )
    )
    cfg = gateway_config(
        primary.params(),
        redis_url=rp.url,
        extra={
            "policies_dir": str(d),
            "log_level": "debug",
            "api_keys": [{"key": Gateway.KEY, "app": "p", "id": "pk", "policy": "full"}],
        },
    )
    cfg["model_list"].append(
        {"model_name": "broken", "litellm_params": {"model": "openai/x", "api_base": "http://127.0.0.1:9/v1"}}
    )
    spool = Path(cfg["mixguard"]["audit"]["spool_path"])
    g = Gateway(cfg, env={"MIXGUARD_AUDIT_KEY": "k"})
    try:

        def send(content: str, model: str = "mixtral", stream: bool = False, key: str = Gateway.KEY) -> int:
            r = httpx.post(
                g.url + "/v1/chat/completions",
                timeout=30,
                headers={"Authorization": f"Bearer {key}", "x-request-id": uuid.uuid4().hex},
                json={"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]},
            )
            return r.status_code

        statuses = {
            "masked": send(PROMPT),
            "cached": send(PROMPT),  # analysis served from cache
            "streamed": send(PROMPT + " Card " + CARD, stream=True),
            "topic_blocked": send(PROMPT + " Also, how to make a pipe bomb?"),
            "pii_blocked": send(PROMPT + f" SSN {SSN}"),
            "failed": send(PROMPT, model="broken"),
            "unauthorized": send(PROMPT, key="sk-nope"),
            "invalid": send(PROMPT, model=""),
        }
        assert statuses["masked"] == 200 and statuses["pii_blocked"] == 400 and statuses["failed"] == 502
        r = redis.Redis.from_url(rp.url)
        deadline = time.time() + 10
        while r.xlen("mixguard:audit") < len(statuses) and time.time() < deadline:
            time.sleep(0.05)
        assert r.xlen("mixguard:audit") == len(statuses)
        rp.stop()
        outage = send(PROMPT)  # Redis down: vault unreachable, record spooled
        deadline = time.time() + 10
        while (not spool.exists() or not spool.read_text()) and time.time() < deadline:
            time.sleep(0.05)
        spooled = spool.read_text()
        assert outage == 503 and spooled.strip()
        rp.start()
        deadline = time.time() + 15
        while time.time() < deadline and spool.read_text():
            time.sleep(0.2)
        stream_bytes = b"".join(f[b"r"] for _, f in r.xrange("mixguard:audit"))
        assert r.xlen("mixguard:audit") == len(statuses) + 1
        arch = tmp_path / "arch"
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "proxy.cli",
                "audit",
                "archive",
                "--redis-url",
                rp.url,
                "--older-than",
                "0s",
                "--dir",
                str(arch),
                "--quiet",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        import gzip

        archive = b"".join(gzip.decompress(p.read_bytes()) for p in arch.glob("*.gz"))
        assert archive.count(b"\n") == len(statuses) + 1
    finally:
        g.stop()
        rp.stop()
    logs = g.output()
    assert b"<PERSON_1>" in stream_bytes and b"<EMAIL_ADDRESS_1>" in stream_bytes  # masked text is kept
    for where, blob in {
        "stream": stream_bytes.decode(),
        "spool": spooled,
        "archive": archive.decode(),
        "log": logs,
    }.items():
        for v in VALUES:
            assert v not in blob, f"{v!r} found in the {where}"
