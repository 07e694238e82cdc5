"""The read-only review page at /admin/audit, rendered by the gateway (no front-end build).

Sign-in is a form that takes the admin key and sets an HttpOnly, SameSite=Strict session cookie
(HMAC of an expiry with a per-process secret); an `Authorization: Bearer <admin key>` header works
too. Every value shown is HTML-escaped; records hold masked text only.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .. import errors
from .chain import Verifier
from .query import Filters, aiter_stream, decode_heads

if TYPE_CHECKING:
    from ..app import Gateway

COOKIE = "mixguard_admin"
SESSION_S = 8 * 3600
PAGE = 200

_CSS = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.3em}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}form.filters input,form.filters select{width:9em;margin-right:.4em}
.ok{color:#176c2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}.muted{color:#777}
pre{background:#f7f7f7;padding:.8em;white-space:pre-wrap;word-break:break-word}
.blocked{color:#b00020}.failed{color:#b35c00}.allowed{color:#176c2c}
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<meta name=robots content=noindex><style>{_CSS}</style></head><body>{body}</body></html>"
    )
    return HTMLResponse(
        doc,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            "X-Frame-Options": "DENY",
        },
    )


class SignInFailures:
    """Failed admin sign-ins per client address: after MAX in WINDOW_S seconds, the client waits
    until the oldest failure leaves the window (guessing the admin key gets slow). In memory: a
    restart forgets, each replica counts its own."""

    MAX, WINDOW_S = 5, 300.0

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = {}

    def _recent(self, client: str) -> list[float]:
        now = time.monotonic()
        times = [t for t in self._times.get(client, []) if now - t < self.WINDOW_S]
        if times:
            self._times[client] = times
        else:
            self._times.pop(client, None)
        return times

    def retry_after(self, client: str) -> int:
        times = self._recent(client)
        if len(times) < self.MAX:
            return 0
        return max(1, int(self.WINDOW_S - (time.monotonic() - times[0])) + 1)

    def failed(self, client: str) -> None:
        self._times.setdefault(client, []).append(time.monotonic())
        if len(self._times) > 10_000:  # bounded: forget the quietest clients first
            for k in sorted(self._times, key=lambda k: self._times[k][-1])[:1000]:
                del self._times[k]

    def succeeded(self, client: str) -> None:
        self._times.pop(client, None)


class AuditPages:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._failures = SignInFailures()

    # --- sessions ------------------------------------------------------------------------------
    def _token(self, expires: int) -> str:
        mac = hmac.new(self.gw.admin_session, f"admin:{expires}".encode(), hashlib.sha256).hexdigest()
        return f"{expires}.{mac}"

    def _signed_in(self, request: Request) -> bool:
        header = request.headers.get("authorization")
        if header:
            try:
                self.gw.keys.authenticate_admin(header)
                return True
            except errors.Unauthorized:
                return False
        tok = request.cookies.get(COOKIE, "")
        exp, _, _mac = tok.partition(".")
        return exp.isdigit() and int(exp) > time.time() and hmac.compare_digest(self._token(int(exp)), tok)

    def _login_form(
        self, note: str = "", status: int = 401, next_url: str = "/admin/audit", retry_after: int = 0
    ) -> HTMLResponse:
        page = _page(
            "mixguard audit: sign in",
            f"""<h1>mixguard audit log</h1>
<p>{html.escape(note) or "Sign in with the gateway's admin key."}</p>
<form method=post action="/admin/login"><input type=hidden name=next value="{html.escape(next_url)}">
<label>Admin key <input type=password name=key id=key autocomplete=off></label>
<button type=submit id=signin>Sign in</button></form>""",
            status,
        )
        if retry_after:
            page.headers["retry-after"] = str(retry_after)
        return page

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self._login_form(status=200)
        client = request.client.host if request.client else "?"
        wait = self._failures.retry_after(client)
        if wait:
            return self._login_form(f"Too many failed sign-ins: try again in {wait} s.", 429, "/admin/audit", wait)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0]
        nxt = (form.get("next") or ["/admin/audit"])[0]
        if not nxt.startswith("/admin/"):
            nxt = "/admin/audit"
        try:
            self.gw.keys.authenticate_admin(f"Bearer {key}")
        except errors.Unauthorized:
            self._failures.failed(client)
            return self._login_form("Wrong admin key.", 401, nxt)
        self._failures.succeeded(client)
        resp = RedirectResponse(nxt, status_code=303)
        expires = int(time.time()) + SESSION_S
        resp.set_cookie(
            COOKIE, self._token(expires), max_age=SESSION_S, httponly=True, samesite="strict", path="/admin"
        )
        return resp

    # --- pages ---------------------------------------------------------------------------------
    def _client(self) -> Any:
        if self.gw.audit is None:
            raise errors.NotFound("Auditing is off in this gateway's config")
        return self.gw.redis.client

    async def _verify(self) -> tuple[bool, str]:
        client, w = self._client(), self.gw.audit
        assert w is not None
        anchors = decode_heads(await client.hgetall(w.stream + ":anchors"))  # written by `mixguard audit archive`
        v = Verifier(self.gw.audit_key, decode_heads(await client.hgetall(w.heads)), anchors)
        async for sid, rec in aiter_stream(client, w.stream):
            v.feed(rec, sid)
        report = v.finish()
        return report.ok, report.summary() + ("" if report.ok else ": " + "; ".join(report.problems[:5]))

    async def index(self, request: Request) -> Response:
        if not self._signed_in(request):
            return self._login_form(next_url="/admin/audit")
        client, w = self._client(), self.gw.audit
        assert w is not None
        try:
            f = Filters.from_mapping(request.query_params)
            lo, hi = f.bounds_ms()
        except ValueError as exc:
            return _page("mixguard audit", f"<p class=bad>{html.escape(str(exc))}</p>", 400)
        rows, scanned = [], 0
        async for sid, rec in aiter_stream(client, w.stream, lo, hi, reverse=True):
            scanned += 1
            if f.match(rec):
                rows.append((sid, rec))
                if len(rows) >= PAGE:
                    break
        ok, summary = await self._verify()
        total = await client.xlen(w.stream)
        inputs = "".join(
            f'<label>{n} <input name={n} id=f-{n} value="{html.escape(f.active().get(n, ""))}"></label>'
            for n in ("since", "until", "app", "key", "outcome", "rule", "entity", "backend", "status", "policy")
        )
        trs = "".join(self._row(sid, r) for sid, r in rows)
        degraded = (
            "<p class=bad>Audit store was unreachable: records are being spooled locally.</p>" if w.degraded else ""
        )
        body = f"""<h1>mixguard audit log</h1>
<p id=chain class={"ok" if ok else "bad"}>Chain: {html.escape(summary)}</p>{degraded}
<form class=filters method=get action="/admin/audit">{inputs}<button type=submit id=apply>Filter</button>
<a href="/admin/audit">clear</a></form>
<p class=muted id=count>{len(rows)} shown (newest first) of {total} records in the stream; {scanned} scanned.</p>
<table id=records><thead><tr><th>time (UTC)</th><th>request</th><th>app / key</th><th>model → backend</th>
<th>policy</th><th>outcome</th><th>status</th><th>decisions</th><th>PII</th><th>ms</th></tr></thead><tbody>{trs}</tbody></table>"""
        return _page("mixguard audit", body)

    @staticmethod
    def _row(sid: str, r: dict[str, Any]) -> str:
        e = html.escape
        dec = ", ".join(
            f"{d.get('rule')}:{d.get('action')}{'' if d.get('mode') == 'enforce' else ' (monitor)'}"
            for d in r.get("decisions") or []
        )
        pii = ", ".join(f"{k}×{v}" for k, v in sorted((r.get("pii") or {}).items()))
        lat = (r.get("latency_ms") or {}).get("total")
        outcome = str(r.get("outcome"))
        return (
            f"<tr class=record><td>{e(str(r.get('time', ''))[:23])}</td>"
            f"<td><a href='/admin/audit/{e(sid)}'>{e(str(r.get('id')))}</a></td>"
            f"<td>{e(str(r.get('app')))}<br><span class=muted>{e(str(r.get('key_id')))}</span></td>"
            f"<td>{e(str(r.get('model')))} → {e(str(r.get('backend')))}</td>"
            f"<td>{e(str(r.get('policy')))}<br><span class=muted>{e(str(r.get('policy_version')))}</span></td>"
            f"<td class={e(outcome)}>{e(outcome)}</td><td>{e(str(r.get('status')))}</td>"
            f"<td>{e(dec)}</td><td>{e(pii)}</td><td>{'' if lat is None else round(lat, 1)}</td></tr>"
        )

    async def detail(self, request: Request) -> Response:
        rid = request.path_params["record_id"]
        if not self._signed_in(request):
            return self._login_form(next_url=f"/admin/audit/{rid}")
        client, w = self._client(), self.gw.audit
        assert w is not None
        found = None
        if rid.replace("-", "").isdigit() and rid.count("-") == 1:
            rows = await client.xrange(w.stream, rid, rid)
            if rows:
                found = (rid, orjson.loads(rows[0][1][b"r"]))
        if found is None:
            async for sid, rec in aiter_stream(client, w.stream, reverse=True):
                if rec.get("id") == rid:
                    found = (sid, rec)
                    break
        if found is None:
            return _page(
                "mixguard audit",
                f"<p class=bad>No audit record {html.escape(rid)}.</p><p><a href='/admin/audit'>back</a></p>",
                404,
            )
        sid, rec = found
        from .chain import sign

        valid = hmac.compare_digest(sign(self.gw.audit_key, rec), str(rec.get("mac", "")))
        pretty = orjson.dumps(rec, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        back = "/admin/audit?" + urlencode(dict(request.query_params.items()))
        body = f"""<h1>Audit record {html.escape(str(rec.get("id")))}</h1>
<p><a href="{html.escape(back)}">back to the list</a> · stream id {html.escape(sid)} ·
chain {html.escape(str(rec.get("chain")))} seq {html.escape(str(rec.get("seq")))}</p>
<p id=signature class={"ok" if valid else "bad"}>Signature: {"valid" if valid else "INVALID (record edited)"}</p>
<pre id=record>{html.escape(pretty)}</pre>"""
        return _page(f"audit {rec.get('id')}", body)
