"""/admin/audit as a security reviewer uses it, over real HTTP against a real gateway and Redis: the
overview's counts per range (presets and custom), the selects filled with the values that occur,
pagination, the bound on records read per view, the record page and the export of a filter (the
same CSV as `mixguard audit export`)."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import time
import uuid

import httpx
import orjson
import pytest
import redis

from procs import ROOT, Gateway, RedisProc, gateway_config

ADMIN = {"Authorization": f"Bearer {Gateway.ADMIN}"}
HOUR = 3600


@pytest.fixture(scope="module")
def review(primary):
    rp = RedisProc().start()
    cfg = gateway_config(primary.params(), redis_url=rp.url)
    cfg["mixguard"]["audit"]["review_max_scan"] = 100
    g = Gateway(cfg, env={"MIXGUARD_AUDIT_KEY": "overview-test"})
    yield g, redis.Redis.from_url(rp.url), rp
    g.stop()
    rp.stop()


def _record(ts: float, i: int, **kw) -> dict:
    """A record as the writer stores it (unsigned: these tests are about the overview, not the chain)."""
    r = {
        "v": 1,
        "id": f"syn-{i:04d}-{uuid.uuid4().hex[:6]}",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(ts)),
        "ts": ts,
        "endpoint": "chat",
        "app": "app-a",
        "key_id": "key-a",
        "model": "mixtral",
        "backend": "sglang",
        "fallback_reason": None,
        "attempts": [],
        "policy": "default",
        "policy_version": "abc",
        "decisions": [],
        "pii": {},
        "outcome": "allowed",
        "status": 200,
        "error_code": None,
        "schema": None,
        "latency_ms": {"guardrails": 1.0, "ttft": None, "total": 5.0},
        "prompt": "user: hi",
        "answer": "hi",
        "chain": "synthetic",
        "seq": i,
    }
    r.update(kw)
    return r


def _add(r: redis.Redis, ts: float, rec: dict) -> None:
    r.xadd("mixguard:audit", {"r": orjson.dumps(rec)}, id=f"{int(ts * 1000)}-{rec['seq']}")


def _num(page: str, card: str) -> int:
    m = re.search(rf"id=t-{card}><b>(\d+)</b>", page)
    assert m, f"no total {card}"
    return int(m.group(1))


def _options(page: str, select: str) -> list[str]:
    m = re.search(rf"<select name={select} id=f-{select}>(.*?)</select>", page, re.S)
    assert m, f"no select {select}"
    return re.findall(r'<option value="([^"]*)"', m.group(1))


def test_overview_counts_ranges_selects_pagination_and_scan_bound(review):
    g, r, _ = review
    r.delete("mixguard:audit")
    now = time.time()
    seq = 0

    def add(ts: float, **kw) -> None:
        nonlocal seq
        _add(r, ts, _record(ts, seq, **kw))
        seq += 1

    # three days ago: outside 24h, inside 7d
    for _ in range(3):
        add(now - 3 * 24 * HOUR, app="old-app")
    # two hours ago: a blocked request, PII, a fallback, a schema violation
    add(
        now - 2 * HOUR,
        outcome="blocked",
        status=400,
        decisions=[{"guardrail": "topics", "rule": "topic.weapons", "action": "block", "mode": "enforce"}],
    )
    add(
        now - 2 * HOUR,
        app="app-b",
        key_id="key-b",
        pii={"PERSON": 2, "EMAIL_ADDRESS": 1},
        decisions=[{"guardrail": "pii", "rule": "pii.PERSON", "action": "mask", "mode": "enforce"}],
    )
    add(now - 2 * HOUR, backend="hosted-mistral", fallback_reason="timeout after 5s")
    add(now - 2 * HOUR, outcome="failed", status=502, schema={"valid": False, "attempts": 2, "violations": ["x"]})
    # 60 more in the last hour: two pages of records
    for i in range(60):
        add(now - 30 * 60 + i, app="app-b" if i % 2 else "app-a")

    page = httpx.get(g.url + "/admin/audit?range=24h", headers=ADMIN, timeout=30).text
    assert _num(page, "requests") == 64
    assert _num(page, "blocked") == 1
    assert _num(page, "pii-entities") == 3
    assert _num(page, "fallbacks") == 1 and _num(page, "schema-violations") == 1
    # charts drawn on the server as inline SVG, with a tooltip per bar
    for chart in (
        "chart-requests",
        "chart-pii",
        "chart-fallbacks",
        "top-apps",
        "top-keys",
        "top-rules",
        "top-backends",
    ):
        assert f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart}"' in page
    assert "<title>PERSON: 2</title>" in page  # the entity bar's tooltip
    assert "<script" not in page
    # selects list the values that occur in the range (not the 3-day-old app)
    assert _options(page, "app") == ["", "app-a", "app-b"]
    assert "topic.weapons" in _options(page, "rule") and "topic.*" in _options(page, "rule")
    assert _options(page, "entity") == ["", "EMAIL_ADDRESS", "PERSON"]
    assert "5xx" in _options(page, "status") and "hosted-mistral" in _options(page, "backend")
    # pagination: 50 newest, then the rest
    assert page.count("<tr class=record>") == 50 and "page 1 of 2" in page
    older = httpx.get(g.url + "/admin/audit?range=24h&page=2", headers=ADMIN, timeout=30).text
    assert older.count("<tr class=record>") == 14 and "page 2 of 2" in older and "id=page-prev" in older
    # 7 days takes in the old records; filters narrow counts and the table alike
    week = httpx.get(g.url + "/admin/audit?range=7d", headers=ADMIN, timeout=30).text
    assert _num(week, "requests") == 67 and "old-app" in _options(week, "app")
    only_b = httpx.get(g.url + "/admin/audit?range=24h&app=app-b", headers=ADMIN, timeout=30).text
    assert _num(only_b, "requests") == 31 and "app-a</td>" not in only_b
    by_rule = httpx.get(g.url + "/admin/audit?range=24h&rule=topic.*", headers=ADMIN, timeout=30).text
    assert _num(by_rule, "requests") == 1
    # a custom range: exactly the records two hours ago
    since = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now - 2 * HOUR - 120))
    until = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now - 2 * HOUR + 120))
    custom = httpx.get(
        g.url + "/admin/audit", params={"range": "custom", "since": since, "until": until}, headers=ADMIN, timeout=30
    ).text
    assert _num(custom, "requests") == 4
    # a bad range is a page that says so, never a traceback
    bad = httpx.get(g.url + "/admin/audit?range=custom&since=yesterday-ish", headers=ADMIN, timeout=30)
    assert bad.status_code == 400 and "cannot read time" in bad.text and "Traceback" not in bad.text
    assert bad.headers["content-security-policy"].startswith("default-src 'none'")
    # the bound: this gateway reads at most 100 records per view, and says so
    for i in range(80):
        add(now - 20 * 60 + i, app="bulk")
    capped = httpx.get(g.url + "/admin/audit?range=24h", headers=ADMIN, timeout=30).text
    assert "id=capped" in capped and "at most 100 records" in capped
    assert "100 records read" in capped and _num(capped, "requests") == 100


def test_export_of_a_filter_has_the_cli_columns_and_rows(review):
    g, r, rp = review
    r.delete("mixguard:audit")
    now = time.time()
    for i in range(30):
        _add(
            r,
            now - 600 + i,
            _record(now - 600 + i, i, app="exp-a" if i % 3 else "exp-b", pii={"PERSON": 1} if i % 2 else {}),
        )
    params = {"since": str(int(now - 3600)), "until": str(int(now + 60)), "app": "exp-a", "entity": "PERSON"}
    web = httpx.get(g.url + "/admin/audit/export", params={"format": "csv", **params}, headers=ADMIN, timeout=30)
    assert web.status_code == 200 and web.headers["content-type"].startswith("text/csv")
    assert "attachment" in web.headers["content-disposition"]
    cli = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "audit", "export", "--redis-url", rp.url, "--format", "csv", "--quiet"]
        + ["--since", params["since"], "--until", params["until"], "--app", "exp-a", "--entity", "PERSON"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    rows = list(csv.reader(io.StringIO(web.text)))
    assert rows == list(csv.reader(io.StringIO(cli.stdout)))
    assert rows[0][:3] == ["id", "time", "endpoint"] and len(rows) == 1 + 10  # i odd and not divisible by 3
    jl = httpx.get(g.url + "/admin/audit/export", params={"format": "jsonl", **params}, headers=ADMIN, timeout=30)
    recs = [orjson.loads(x) for x in jl.text.splitlines()]
    assert [x["id"] for x in recs] == [row[0] for row in rows[1:]]
    # bad input: OpenAI-style error JSON; no admin: no export
    bad = httpx.get(g.url + "/admin/audit/export?format=xml", headers=ADMIN, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "format"
    anon = httpx.get(g.url + "/admin/audit/export?format=csv", timeout=30)
    assert anon.status_code == 401 and "exp-a" not in anon.text


def test_record_page_shows_masked_text_decisions_latency_and_chain_neighbours(review):
    g, r, _ = review
    r.delete("mixguard:audit")
    ids = []
    for text in ("First, I am Ottoline Marchbanks", "Second, mail ottoline@example.org", "Third, nothing here"):
        rid = "rec-" + uuid.uuid4().hex[:10]
        ids.append(rid)
        resp = httpx.post(
            g.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {Gateway.KEY}", "x-request-id": rid},
            json={"model": "mixtral", "messages": [{"role": "user", "content": text}]},
            timeout=30,
        )
        assert resp.status_code == 200
    deadline = time.time() + 10
    while r.xlen("mixguard:audit") < 3 and time.time() < deadline:
        time.sleep(0.1)
    page = httpx.get(g.url + f"/admin/audit/{ids[1]}", headers=ADMIN, timeout=30).text
    assert re.search(r"<pre id=prompt class=text>user: Second, mail &lt;EMAIL_ADDRESS_1&gt;</pre>", page)
    assert "ottoline@example.org" not in page and "Marchbanks" not in page
    assert "<table id=decisions>" in page and "pii.EMAIL_ADDRESS" in page
    assert "<table id=latency" in page and "input guardrails" in page
    assert "<table id=attempts>" in page and "sglang" in page
    assert "Signature: valid" in page
    assert "linked to the previous record" in page and "the next record links to it" in page
    prev = re.search(r'<a id=prev href="/admin/audit/([0-9-]+)">', page)
    nxt = re.search(r'<a id=next href="/admin/audit/([0-9-]+)">', page)
    assert prev and nxt
    assert f"Audit record {ids[0]}" in httpx.get(g.url + f"/admin/audit/{prev.group(1)}", headers=ADMIN).text
    last = httpx.get(g.url + f"/admin/audit/{nxt.group(1)}", headers=ADMIN).text
    assert f"Audit record {ids[2]}" in last and "signed head" in last and "id=next" not in last
    # an edited copy of a record: its signature fails on the page
    rec = orjson.loads(r.xrange("mixguard:audit", "-", "+")[0][1][b"r"])
    rec["app"] = "forged"
    sid = r.xadd("mixguard:audit", {"r": orjson.dumps(rec)}).decode()
    forged = httpx.get(g.url + f"/admin/audit/{sid}", headers=ADMIN).text
    assert "Signature: INVALID" in forged
    missing = httpx.get(g.url + "/admin/audit/no-such-record", headers=ADMIN)
    assert missing.status_code == 404 and "No audit record" in missing.text


def test_time_ranges_and_charts_escape_what_they_draw():
    from proxy.audit.overview import TimeRange
    from proxy.audit.svg_charts import hbars, nice_max, time_bars

    now = 1_800_000_000.0
    day = TimeRange.from_query({"range": "24h"}, now)
    assert (day.bucket_s, day.n_buckets, day.end - day.start) == (3600, 24, 86400) and day.end >= now
    assert day.bucket_of(day.start) == 0 and day.bucket_of(day.end - 1) == 23
    custom = TimeRange.from_query({"since": "2027-01-15T10:00", "until": "2027-01-15T12:00"})
    assert custom.preset == "custom" and custom.end - custom.start == 7200 and custom.n_buckets <= 40
    for bad in ({"range": "fortnight"}, {"range": "custom", "since": "2027-01-15", "until": "2027-01-14"}):
        with pytest.raises(ValueError):
            TimeRange.from_query(bad, now)
    assert [nice_max(v) for v in (0, 3, 7, 10, 11, 140)] == [1, 5, 10, 10, 20, 200]
    # names come from configs and policies: drawn as text, never as markup
    evil = '<script>alert(1)</script>"'
    svg = hbars([(evil, 3)], chart_id="x", title="t") + time_bars(["a"], {evil: [2]}, chart_id="y", title=evil)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
