"""The read-only review pages at /admin/audit, rendered by the gateway (no front-end build, no
script): the overview (overview.py aggregates, overview_page.py draws it), a page per record
(record_view.py) and the export of the current filter (export.py).

Sign-in is a form that takes the admin key and sets an HttpOnly, SameSite=Strict session cookie
(HMAC of an expiry with a per-process secret); an `Authorization: Bearer <admin key>` header works
too. Every value shown is HTML-escaped; records hold masked text only.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from .. import errors
from . import overview_page, record_view
from .chain import Verifier, sign
from .export import MEDIA_TYPES, export_lines
from .overview import FACETS, PRESETS, Overview, TimeRange
from .query import Filters, aiter_stream, decode_heads
from .record_view import ChainLinks

if TYPE_CHECKING:
    from ..app import Gateway

COOKIE = "mixguard_admin"
SESSION_S = 8 * 3600
NEIGHBOUR_SCAN = 10_000  # stream entries searched each way for a record's chain neighbours

_CSS = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.3em}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}h2{font-size:1.1em;margin-top:1.4em}
form.filters{display:flex;flex-wrap:wrap;gap:.3em .9em;align-items:end;background:#f7f7f7;padding:.6em;border-radius:4px}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#555}
form.filters select,form.filters input{min-width:8em;max-width:14em}
.ok{color:#176c2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}.muted{color:#777}
pre{background:#f7f7f7;padding:.8em;white-space:pre-wrap;word-break:break-word}
.blocked{color:#b00020}.failed{color:#b35c00}.allowed{color:#176c2c}
.cards{display:flex;gap:.8em;margin:.8em 0}.card{border:1px solid #ddd;border-radius:4px;padding:.5em .9em;min-width:8em}
.card b{font-size:1.5em}.charts{display:flex;flex-wrap:wrap;gap:1em;margin:.6em 0}
table.facts{width:auto}table.facts th{background:none;color:#555;font-weight:normal}.num{text-align:right}
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
        #: records the overview reads per page view, at most (the newest of the range)
        self.max_scan = gw.config.mixguard.audit.review_max_scan

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
        """The overview: totals, charts and top lists over a time range, then the matching records."""
        if not self._signed_in(request):
            return self._login_form(next_url="/admin/audit")
        client, w = self._client(), self.gw.audit
        assert w is not None
        q = request.query_params
        try:
            rng = TimeRange.from_query(q)
            f = Filters.from_mapping({k: q.get(k) for k in FACETS})
            page = int(q.get("page") or 1)
            if page < 1:
                raise ValueError("page must be 1 or more")
        except ValueError as exc:
            return _page("mixguard audit", f"<p class=bad>{html.escape(str(exc))}</p>", 400)
        lo, hi = rng.bounds_ms()
        ov = Overview(rng, f, page, self.max_scan)
        await ov.scan(aiter_stream(client, w.stream, lo, hi, reverse=True))
        ok, summary = await self._verify()
        degraded = (
            "<p class=bad>Audit store was unreachable: records are being spooled locally.</p>" if w.degraded else ""
        )
        body = f"""<h1>mixguard audit log</h1>
<p id=chain class={"ok" if ok else "bad"}>Chain: {html.escape(summary)}</p>{degraded}
{overview_page.filter_form(ov)}
{overview_page.scan_note(ov)}
{overview_page.totals(ov)}
{overview_page.charts(ov)}
{overview_page.records(ov, dict(q.items()))}"""
        return _page("mixguard audit", body)

    async def export(self, request: Request) -> Response:
        """The records of the current filter as CSV or JSONL (the CLI's columns), streamed."""
        if not self._signed_in(request):
            return self._login_form(next_url="/admin/audit")
        client, w = self._client(), self.gw.audit
        assert w is not None
        q = request.query_params
        fmt = q.get("format", "csv")
        if fmt not in MEDIA_TYPES:
            raise errors.BadRequest("format must be csv or jsonl", param="format")
        try:
            lo, hi = (
                TimeRange.from_query(q).bounds_ms()
                if q.get("range") in PRESETS
                else Filters(since=q.get("since"), until=q.get("until")).bounds_ms()
            )
            f = Filters.from_mapping({k: q.get(k) for k in FACETS})
        except ValueError as exc:
            raise errors.BadRequest(str(exc)) from None

        async def matching() -> AsyncIterator[tuple[str, dict[str, Any]]]:
            async for sid, rec in aiter_stream(client, w.stream, lo, hi):
                if f.match(rec):
                    yield sid, rec

        name = f"mixguard-audit-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.{fmt}"
        return StreamingResponse(
            export_lines(matching(), fmt),  # type: ignore[arg-type]
            media_type=MEDIA_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )

    async def _find(self, rid: str) -> tuple[str, dict[str, Any]] | None:
        """A record by stream id, or by request id (newest first)."""
        client, w = self._client(), self.gw.audit
        assert w is not None
        if rid.replace("-", "").isdigit() and rid.count("-") == 1:
            rows = await client.xrange(w.stream, rid, rid)
            if rows:
                return rid, orjson.loads(rows[0][1][b"r"])
        async for sid, rec in aiter_stream(client, w.stream, reverse=True):
            if rec.get("id") == rid:
                return sid, rec
        return None

    async def _links(self, sid: str, rec: dict[str, Any]) -> ChainLinks:
        """Signature, and the same chain's seq - 1 and seq + 1 around this record (searched within
        NEIGHBOUR_SCAN stream entries each way: chains of other processes interleave)."""
        client, w = self._client(), self.gw.audit
        assert w is not None
        links = ChainLinks(
            hmac.compare_digest(sign(self.gw.audit_key, rec), str(rec.get("mac", ""))), searched=NEIGHBOUR_SCAN
        )
        chain, seq = rec.get("chain"), rec.get("seq")
        if not isinstance(seq, int):
            return links
        head = decode_heads(await client.hgetall(w.heads)).get(str(chain)) or {}
        links.is_head = head.get("seq") == seq
        for reverse, want in ((True, seq - 1), (False, seq + 1)):
            lo, hi = ("-", "(" + sid) if reverse else ("(" + sid, "+")
            n = 0
            async for other_sid, other in aiter_stream(client, w.stream, lo, hi, page=200, reverse=reverse):
                n += 1
                if n > NEIGHBOUR_SCAN:
                    break
                if other.get("chain") == chain and other.get("seq") == want:
                    if reverse:
                        links.prev_sid, links.prev_linked = other_sid, other.get("mac") == rec.get("prev")
                    else:
                        links.next_sid, links.next_linked = other_sid, other.get("prev") == rec.get("mac")
                    break
        return links

    async def detail(self, request: Request) -> Response:
        rid = request.path_params["record_id"]
        if not self._signed_in(request):
            return self._login_form(next_url=f"/admin/audit/{rid}")
        found = await self._find(rid)
        if found is None:
            return _page(
                "mixguard audit",
                f"<p class=bad>No audit record {html.escape(rid)}.</p><p><a href='/admin/audit'>back</a></p>",
                404,
            )
        sid, rec = found
        back = "/admin/audit?" + urlencode(dict(request.query_params.items()))
        return _page(f"audit {rec.get('id')}", record_view.render(sid, rec, await self._links(sid, rec), back))
