"""HTML of the /admin/audit overview: the filter form (selects filled with the values that occur),
totals, SVG charts, top lists, the matching records with pagination, and export links.

No script: the form submits with a button, so the page keeps `default-src 'none'`."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from . import svg_charts
from .overview import FACETS, OUTCOMES, PRESETS, Overview

_LABELS = {
    "app": "app",
    "key": "key",
    "outcome": "outcome",
    "rule": "rule",
    "entity": "PII entity",
    "backend": "backend",
    "status": "status",
    "policy": "policy",
}


def _select(name: str, label: str, current: str, options: list[tuple[str, str]]) -> str:
    opts = "".join(
        f'<option value="{escape(v)}"{" selected" if v == current else ""}>{escape(text)}</option>'
        for v, text in options
    )
    return f"<label>{escape(label)} <select name={name} id=f-{name}>{opts}</select></label>"


def filter_form(ov: Overview) -> str:
    """Range (presets and custom) and one select per filter field, with the values of the range."""
    rng, active = ov.range, ov.filters.active()
    presets = [(p, f"last {p}") for p in PRESETS] + [("custom", "custom (since/until, UTC)")]
    fields = [_select("range", "range", rng.preset, presets)]
    fields.append(
        f'<label>since <input type=datetime-local name=since id=f-since value="{rng.iso(rng.start)}"></label>'
        f'<label>until <input type=datetime-local name=until id=f-until value="{rng.iso(rng.end)}"></label>'
    )
    for name in FACETS:
        current = active.get(name, "")
        values = sorted(ov.options[name] | ({current} if current else set()))
        fields.append(_select(name, _LABELS[name], current, [("", "any"), *((v, v) for v in values)]))
    return (
        '<form class=filters method=get action="/admin/audit">'
        + "".join(fields)
        + '<button type=submit id=apply>Apply</button> <a href="/admin/audit" id=clear>clear</a></form>'
    )


def scan_note(ov: Overview) -> str:
    rng = ov.range
    text = (
        f"{rng.iso(rng.start)} to {rng.iso(rng.end)} UTC, bars of {_duration(rng.bucket_s)}: "
        f"{ov.scanned} records read, {ov.matched} match the filters."
    )
    out = f"<p class=muted id=scan>{escape(text)}</p>"
    if ov.capped_at is not None:
        out += (
            f"<p class=bad id=capped>This page reads at most {ov.max_scan} records per view: the figures cover "
            f"{escape(rng.iso(ov.capped_at))} to {escape(rng.iso(rng.end))} only, not the older part of the range. "
            "Choose a shorter range, or export (which reads the whole range).</p>"
        )
    return out


def _duration(s: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s % n == 0:
            return f"{s // n} {unit}"
    return f"{s} s"


def totals(ov: Overview) -> str:
    names = {
        "requests": "requests",
        "blocked": "blocked or refused",
        "pii_entities": "PII entities masked or found",
        "fallbacks": "served by a fallback",
        "schema_violations": "schema violations",
    }
    cards = "".join(
        f"<div class=card id=t-{k.replace('_', '-')}><b>{v}</b><br>{escape(names[k])}</div>"
        for k, v in ov.totals.items()
    )
    return f"<div class=cards>{cards}</div>"


def charts(ov: Overview) -> str:
    labels = ov.range.labels()
    outcomes = {o: ov.outcomes[o] for o in OUTCOMES if any(ov.outcomes[o])} or {"requests": [0] * len(labels)}
    time_charts = [
        svg_charts.time_bars(labels, outcomes, chart_id="chart-requests", title="Requests by outcome"),
        svg_charts.time_bars(
            labels,
            ov.pii_series or {"PII entities": [0] * len(labels)},
            chart_id="chart-pii",
            title="PII entities by type",
        ),
        svg_charts.time_bars(
            labels,
            {"fallbacks": ov.fallbacks, "schema violations": ov.schema_violations},
            chart_id="chart-fallbacks",
            title="Fallbacks and schema violations",
        ),
        svg_charts.hbars(ov.top(ov.pii), chart_id="top-entities", title="PII entities by type", width=320),
    ]
    tops = [
        svg_charts.hbars(ov.top(ov.apps), chart_id="top-apps", title="Top apps"),
        svg_charts.hbars(ov.top(ov.keys), chart_id="top-keys", title="Top keys"),
        svg_charts.hbars(ov.top(ov.rules), chart_id="top-rules", title="Top rules (rule:action)"),
        svg_charts.hbars(ov.top(ov.backends), chart_id="top-backends", title="Top backends"),
    ]
    return f"<div class=charts>{''.join(time_charts)}</div><div class=charts>{''.join(tops)}</div>"


def _link(query: dict[str, str], **changes: Any) -> str:
    q = {k: v for k, v in {**query, **{k: str(v) for k, v in changes.items()}}.items() if v}
    return "/admin/audit?" + urlencode(q)


def export_links(ov: Overview) -> str:
    """Links to /admin/audit/export for exactly the range shown (absolute bounds) and the filters."""
    q = {"since": str(int(ov.range.start)), "until": str(int(ov.range.end)), **ov.filters.active()}
    return " ".join(
        f'<a id=export-{fmt} href="/admin/audit/export?{escape(urlencode({"format": fmt, **q}))}">export {fmt.upper()}</a>'
        for fmt in ("csv", "jsonl")
    )


def records(ov: Overview, query: dict[str, str]) -> str:
    nav = []
    if ov.page > 1:
        nav.append(f'<a id=page-prev href="{escape(_link(query, page=ov.page - 1))}">← newer</a>')
    nav.append(f"<span id=page>page {ov.page} of {ov.pages}</span>")
    if ov.page < ov.pages:
        nav.append(f'<a id=page-next href="{escape(_link(query, page=ov.page + 1))}">older →</a>')
    trs = "".join(_row(sid, r) for sid, r in ov.rows)
    return f"""<h2>Records</h2>
<p class=nav>{" · ".join(nav)} · <span id=count>{len(ov.rows)} shown (newest first) of {ov.matched} matching</span>
 · {export_links(ov)}</p>
<table id=records><thead><tr><th>time (UTC)</th><th>request</th><th>app / key</th><th>model → backend</th>
<th>policy</th><th>outcome</th><th>status</th><th>decisions</th><th>PII</th><th>ms</th></tr></thead><tbody>{trs}</tbody></table>"""


def _row(sid: str, r: dict[str, Any]) -> str:
    e = escape
    dec = ", ".join(
        f"{d.get('rule')}:{d.get('action')}{'' if d.get('mode') == 'enforce' else ' (monitor)'}"
        for d in r.get("decisions") or []
    )
    pii = ", ".join(f"{k}×{v}" for k, v in sorted((r.get("pii") or {}).items()))
    lat = (r.get("latency_ms") or {}).get("total")
    outcome = str(r.get("outcome"))
    fb = (
        f"<br><span class=muted>fallback: {e(str(r.get('fallback_reason')))}</span>" if r.get("fallback_reason") else ""
    )
    return (
        f"<tr class=record><td>{e(str(r.get('time', ''))[:23])}</td>"
        f"<td><a href='/admin/audit/{e(sid)}'>{e(str(r.get('id')))}</a></td>"
        f"<td>{e(str(r.get('app')))}<br><span class=muted>{e(str(r.get('key_id')))}</span></td>"
        f"<td>{e(str(r.get('model')))} → {e(str(r.get('backend')))}{fb}</td>"
        f"<td>{e(str(r.get('policy')))}<br><span class=muted>{e(str(r.get('policy_version')))}</span></td>"
        f"<td class={e(outcome)}>{e(outcome)}</td><td>{e(str(r.get('status')))}</td>"
        f"<td>{e(dec)}</td><td>{e(pii)}</td><td>{'' if lat is None else round(lat, 1)}</td></tr>"
    )
