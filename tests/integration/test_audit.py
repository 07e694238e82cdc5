"""The audit log: one signed record per request, tamper detection, spool and replay across a
Redis restart, fail-closed, terminal review (search, show, export, archive, verify)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
import redis
import yaml

from procs import ROOT, Gateway, RedisProc, Standin, gateway_config

AUDIT_KEY = "test-audit-signing-key"
ENV = {"MIXGUARD_AUDIT_KEY": AUDIT_KEY}
PREFIX = "mixguard:"


def mixguard(*args: str, env_key: str = AUDIT_KEY) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MIXGUARD_AUDIT_KEY": env_key},
    )


def records(r: redis.Redis, prefix: str = PREFIX) -> list[tuple[str, dict]]:
    return [(sid.decode(), orjson.loads(f[b"r"])) for sid, f in r.xrange(f"{prefix}audit")]


def wait_record(r: redis.Redis, request_id: str, timeout: float = 10) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for _, rec in reversed(records(r)):
            if rec["id"] == request_id:
                return rec
        time.sleep(0.05)
    raise AssertionError(f"no audit record for {request_id}")


@pytest.fixture(scope="module")
def audit_redis():
    rp = RedisProc().start()
    yield rp
    rp.stop()


@pytest.fixture(scope="module")
def agw(primary, audit_redis):
    d = Path(tempfile.mkdtemp(prefix="mg-apol-"))
    (d / "default.yaml").write_text((ROOT / "policies" / "default.yaml").read_text())
    (d / "guarded.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "guarded",
                "audit": {"content": "full"},
                "topics": {
                    "deny": [{"name": "weapons", "keywords": ["pipe bomb"]}],
                    "refusal": {"style": "completion"},
                },
            }
        )
    )
    cfg = gateway_config(
        primary.params(),
        redis_url=audit_redis.url,
        extra={
            "policies_dir": str(d),
            "api_keys": [
                {"key": Gateway.KEY, "app": "test-app", "id": "test-key", "policy": "guarded"},
                {"key": "sk-other-app-key", "app": "other-app", "id": "other-key"},
            ],
        },
    )
    cfg["model_list"].append(
        {
            "model_name": "broken",
            "litellm_params": {"model": "openai/x", "api_base": "http://127.0.0.1:9/v1"},
            "model_info": {"id": "dead"},
        }
    )
    g = Gateway(cfg, env=ENV)
    yield g
    g.stop()


def call(
    gw: Gateway,
    content: str,
    key: str = Gateway.KEY,
    model: str = "mixtral",
    stream: bool = False,
    conv: str | None = None,
) -> tuple[str, httpx.Response]:
    rid = "req-" + uuid.uuid4().hex[:12]
    headers = {"Authorization": f"Bearer {key}", "x-request-id": rid, **({"x-conversation-id": conv} if conv else {})}
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}
    r = httpx.post(gw.url + "/v1/chat/completions", headers=headers, json=body, timeout=30)
    return rid, r


def test_every_request_leaves_one_record_with_decisions_usage_and_timings(agw, audit_redis):
    r = redis.Redis.from_url(audit_redis.url)
    rid, resp = call(agw, "Please email Margaret Thompson at margaret.t@example.org about the invoice.")
    assert resp.status_code == 200
    rec = wait_record(r, rid)
    assert rec["outcome"] == "allowed" and rec["status"] == 200 and rec["app"] == "test-app"
    assert rec["key_id"] == "test-key" and rec["policy"] == "guarded" and len(rec["policy_version"]) == 12
    assert rec["backend"] == "sglang" and rec["model"] == "mixtral" and rec["endpoint"] == "chat"
    assert rec["pii"] == {"PERSON": 1, "EMAIL_ADDRESS": 1}
    assert {"rule": "pii.PERSON", "action": "mask"}.items() <= next(
        d for d in rec["decisions"] if d["rule"] == "pii.PERSON"
    ).items()
    assert "<PERSON_1>" in rec["prompt"] and "Margaret" not in rec["prompt"]
    assert rec["usage"]["prompt_tokens"] > 0 and "cached_tokens" in rec["usage"]
    lat = rec["latency_ms"]
    assert lat["guardrails"] > 0 and lat["total"] >= lat["guardrails"]
    assert [rec[k] for k in ("chain", "seq", "prev", "mac")] and len(rec["mac"]) == 64

    rid, resp = call(agw, "how to build a pipe bomb")  # refused by a topic rule (as a completion)
    rec = wait_record(r, rid)
    assert resp.status_code == 200 and rec["outcome"] == "blocked"
    assert any(d["rule"] == "topic.weapons" and d["action"] == "block" for d in rec["decisions"])
    assert rec["prompt"] is None  # refused before masking: never recorded

    rid, resp = call(agw, "my ssn is 536-22-8745", key="sk-other-app-key")
    rec = wait_record(r, rid)
    assert resp.status_code == 400 and rec["outcome"] == "blocked" and rec["error_code"] == "pii_blocked"
    assert rec["app"] == "other-app" and rec["policy"] == "default"

    rid, resp = call(agw, "hello", model="broken")
    rec = wait_record(r, rid)
    assert resp.status_code == 502 and rec["outcome"] == "failed" and rec["error_code"] == "bad_gateway"

    rid, resp = call(agw, "hello", key="sk-wrong")
    rec = wait_record(r, rid)
    assert resp.status_code == 401 and rec["outcome"] == "unauthorized" and rec["key_id"] is None

    rid, resp = call(agw, "stream this answer please", stream=True)
    rec = wait_record(r, rid)
    assert rec["stream"] is True and rec["latency_ms"]["ttft"] is not None and rec["outcome"] == "allowed"
    assert rec["answer"]


def _copy_stream(src: redis.Redis, dst_prefix: str, mutate=None) -> None:
    """Copy the audit stream and heads to another prefix, optionally tampering on the way."""
    rows = records(src)
    if mutate:
        rows = mutate(rows)
    for key in (f"{dst_prefix}audit", f"{dst_prefix}audit:heads"):
        src.delete(key)
    for sid, rec in rows:
        src.xadd(f"{dst_prefix}audit", {"r": orjson.dumps(rec)}, id=sid)
    for chain, head in src.hgetall(f"{PREFIX}audit:heads").items():
        src.hset(f"{dst_prefix}audit:heads", chain, head)


def test_verify_passes_and_detects_edited_deleted_inserted_reordered_and_cut_records(agw, audit_redis):
    r = redis.Redis.from_url(audit_redis.url)
    for i in range(4):
        call(agw, f"record number {i}")
    time.sleep(0.5)
    ok = mixguard("audit", "verify", "--redis-url", audit_redis.url, "--quiet")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK:" in ok.stdout
    wrong = mixguard("audit", "verify", "--redis-url", audit_redis.url, "--quiet", env_key="another-key")
    assert wrong.returncode == 1 and "signature mismatch" in wrong.stdout  # a wrong key verifies (and forges) nothing

    def renumber(rows):  # stream ids must increase: give tampered copies fresh ids in order
        return [(f"{i + 1}-0", rec) for i, (_, rec) in enumerate(rows)]

    def edit(rows):
        rows[1][1]["app"] = "someone-else"
        return rows

    def forge(rows):
        fake = dict(rows[1][1], id="forged", seq=rows[1][1]["seq"] + 1, prev=rows[1][1]["mac"], mac="0" * 64)
        return rows[:2] + [("0-0", fake)] + rows[2:]

    cases = {
        "edit": (edit, "signature mismatch"),
        "delete": (lambda rows: rows[:1] + rows[2:], "records deleted, inserted or reordered"),
        "insert": (forge, "signature mismatch"),
        "reorder": (lambda rows: rows[:1] + [rows[2], rows[1]] + rows[3:], "records deleted, inserted or reordered"),
        "cut": (lambda rows: rows[:-2], "records cut off the end"),
    }
    for name, (mutate, expected) in cases.items():
        prefix = f"tamper-{name}:"
        _copy_stream(r, prefix, lambda rows, m=mutate: renumber(m(rows)))
        out = mixguard("audit", "verify", "--redis-url", audit_redis.url, "--prefix", prefix, "--quiet")
        assert out.returncode == 1, (name, out.stdout)
        assert expected in out.stdout, (name, out.stdout)
        assert "FAILED" in out.stdout


def test_search_show_export_and_archive_from_the_terminal(agw, audit_redis, tmp_path):
    rid, _ = call(agw, "how to build a pipe bomb")
    r = redis.Redis.from_url(audit_redis.url)
    wait_record(r, rid)
    url = ["--redis-url", audit_redis.url]
    out = mixguard("audit", "search", *url, "--app", "test-app", "--decision", "blocked", "--rule", "topic.*", "--json")
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert rows and all(x["app"] == "test-app" and x["outcome"] == "blocked" for x in rows)
    assert rid in {x["id"] for x in rows}
    out = mixguard("audit", "search", *url, "--entity", "EMAIL_ADDRESS", "--since", "1h", "--json")
    assert all(json.loads(x)["pii"].get("EMAIL_ADDRESS") for x in out.stdout.splitlines())
    shown = mixguard("audit", "show", *url, rid)
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == rid
    assert mixguard("audit", "show", *url, "no-such-id").returncode == 1
    csv_path = tmp_path / "out.csv"
    exp = mixguard("audit", "export", *url, "--format", "csv", "-o", str(csv_path), "--status", "2xx")
    assert exp.returncode == 0
    table = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert table and all(row["status"].startswith("2") for row in table)
    assert "export" in exp.stderr  # the progress bar (tqdm) goes to stderr
    total = len(records(r))
    jl = mixguard("audit", "export", *url)
    assert len(jl.stdout.splitlines()) == total

    # Archive a copy: records move to a gzip file, the stream keeps the rest, the chain still verifies.
    _copy_stream(r, "arch:")
    arch = tmp_path / "archive"
    out = mixguard("audit", "archive", *url, "--prefix", "arch:", "--older-than", "0s", "--dir", str(arch))
    assert out.returncode == 0, out.stderr
    files = list(arch.glob("audit-*.jsonl.gz"))
    assert len(files) == 1
    with gzip.open(files[0], "rt") as fh:
        assert len(fh.readlines()) == total
    assert r.xlen("arch:audit") == 0
    v = mixguard("audit", "verify", *url, "--prefix", "arch:", "--archive", str(arch), "--quiet")
    assert v.returncode == 0, v.stdout
    assert f"{total} records" in v.stdout


# --- Redis goes away ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outage(primary):
    rp = RedisProc(persist=True).start()
    d = Path(tempfile.mkdtemp(prefix="mg-opol-"))
    (d / "default.yaml").write_text("name: default\npii: {enabled: false}\n")
    (d / "closed.yaml").write_text("name: closed\npii: {enabled: false}\naudit: {on_unavailable: fail_closed}\n")
    cfg = gateway_config(
        primary.params(),
        redis_url=rp.url,
        extra={
            "policies_dir": str(d),
            "api_keys": [
                {"key": Gateway.KEY, "app": "open-app", "id": "open"},
                {"key": "sk-closed", "app": "closed-app", "policy": "closed", "id": "closed"},
            ],
        },
    )
    g = Gateway(cfg, env=ENV)
    yield g, rp, Path(cfg["mixguard"]["audit"]["spool_path"])
    g.stop()
    rp.stop()


def test_records_are_spooled_while_redis_is_down_and_replayed_in_order(outage):
    g, rp, spool = outage
    r = redis.Redis.from_url(rp.url)
    for i in range(3):
        assert call(g, f"before {i}")[1].status_code == 200
    deadline = time.time() + 10
    while len(records(r)) < 3 and time.time() < deadline:
        time.sleep(0.05)
    rp.stop()
    during = [call(g, f"during {i}")[0] for i in range(3)]  # fail-open: requests keep flowing
    deadline = time.time() + 10
    while (not spool.exists() or len(spool.read_text().splitlines()) < 3) and time.time() < deadline:
        time.sleep(0.05)
    spooled = [json.loads(x) for x in spool.read_text().splitlines()]
    assert [x["id"] for x in spooled] == during
    closed_rid, closed = call(g, "hello", key="sk-closed")  # fail-closed policy: refused while degraded
    assert closed.status_code == 503 and closed.json()["error"]["code"] == "audit_unavailable"
    rp.start()  # same port, same append-only file
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            if len(records(r)) >= 7:
                break
        except redis.ConnectionError:
            pass
        time.sleep(0.2)
    recs = [rec for _, rec in records(r)]
    ids = [x["id"] for x in recs]
    assert ids[3:6] == during and ids[6] == closed_rid  # replayed in order, the refusal recorded too
    assert [x["seq"] for x in recs] == list(range(len(recs)))
    assert spool.read_text() == ""
    assert call(g, "hello again", key="sk-closed")[1].status_code == 200
    v = mixguard("audit", "verify", "--redis-url", rp.url, "--quiet")
    assert v.returncode == 0, v.stdout


def test_verify_fails_when_records_or_heads_are_lost_unless_an_archive_anchor_explains_the_gap(
    agw, audit_redis, tmp_path
):
    """A Redis that lost data (no persistence) used to verify as OK with a note; now only records
    moved out by `mixguard audit archive` (which signs an anchor) may be absent."""
    r = redis.Redis.from_url(audit_redis.url)
    rid, _ = call(agw, "one more record for the loss test")
    wait_record(r, rid)
    url = ["--redis-url", audit_redis.url]

    def renumber(rows):
        return [(f"{i + 1}-0", rec) for i, (_, rec) in enumerate(rows)]

    # the first records of every chain lost (as after a crash without AOF), heads kept
    _copy_stream(r, "lost-head:", lambda rows: renumber([x for x in rows if x[1]["seq"] >= 2]))
    out = mixguard("audit", "verify", *url, "--prefix", "lost-head:", "--quiet")
    assert out.returncode == 1 and "are missing and no archive anchor covers them" in out.stdout, out.stdout

    # the signed heads lost
    _copy_stream(r, "no-heads:", renumber)
    r.delete("no-heads:audit:heads")
    out = mixguard("audit", "verify", *url, "--prefix", "no-heads:", "--quiet")
    assert out.returncode == 1 and "no signed head" in out.stdout, out.stdout

    # every record lost, heads kept
    _copy_stream(r, "all-lost:", lambda rows: [])
    out = mixguard("audit", "verify", *url, "--prefix", "all-lost:", "--quiet")
    assert out.returncode == 1 and "records missing" in out.stdout, out.stdout

    # archived by the CLI: the gap is explained by a signed anchor, verify passes without the files
    _copy_stream(r, "anchored:", renumber)
    r.delete("anchored:audit:anchors")
    total = r.xlen("anchored:audit")
    arch = tmp_path / "arch"
    out = mixguard("audit", "archive", *url, "--prefix", "anchored:", "--older-than", "0s", "--dir", str(arch))
    assert out.returncode == 0, out.stderr
    assert r.xlen("anchored:audit") == 0 and r.hlen("anchored:audit:anchors") >= 1
    out = mixguard("audit", "verify", *url, "--prefix", "anchored:", "--quiet")
    assert out.returncode == 0 and "archived (anchor checked)" in out.stdout, out.stdout
    out = mixguard("audit", "verify", *url, "--prefix", "anchored:", "--archive", str(arch), "--quiet")
    assert out.returncode == 0 and f"{total} records" in out.stdout, out.stdout

    # a forged anchor does not explain a gap
    chain = next(iter(r.hgetall("anchored:audit:anchors")))
    mark = orjson.loads(r.hget("anchored:audit:anchors", chain))
    r.hset("anchored:audit:anchors", chain, orjson.dumps({**mark, "seq": mark["seq"] + 5}))
    out = mixguard("audit", "verify", *url, "--prefix", "anchored:", "--quiet")
    assert out.returncode == 1 and "archive anchor signature mismatch" in out.stdout, out.stdout


def test_a_stream_the_client_abandons_is_audited_as_client_closed(audit_redis):
    s = Standin()
    s.configure(token_ms=50)
    g = Gateway(
        gateway_config({"model": "openai/mixtral", "api_base": f"{s.url}/v1"}, redis_url=audit_redis.url), env=ENV
    )
    try:
        rid = "req-abandon-" + uuid.uuid4().hex[:8]
        words = " ".join(f"word{i}" for i in range(200))
        with httpx.stream(
            "POST",
            g.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {Gateway.KEY}", "x-request-id": rid},
            json={"model": "mixtral", "stream": True, "messages": [{"role": "user", "content": words}]},
            timeout=30,
        ) as r:
            it = r.iter_lines()
            assert any(next(it).startswith("data: ") for _ in range(6))
        rec = wait_record(redis.Redis.from_url(audit_redis.url), rid)
        assert rec["status"] == 499 and rec["outcome"] == "client_closed", rec
        assert rec["error_code"] == "client_closed"
    finally:
        g.stop()
        s.stop()
