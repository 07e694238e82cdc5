"""The record page of /admin/audit, for people: masked prompt and answer as text, decisions as a
table, the latency breakdown, backend and fallback attempts, signature and chain status, and links
to the previous and next record of the same chain. Every value is HTML-escaped; records hold
masked text only (placeholders such as <PERSON_1>), never a raw value."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

import orjson


@dataclass
class ChainLinks:
    """Where a record sits in its chain, as the page found it (each neighbour searched within a
    bounded number of stream entries)."""

    signature_ok: bool
    prev_sid: str | None = None  # stream id of seq - 1 of the same chain, when found
    prev_linked: bool | None = None  # its mac equals this record's prev
    next_sid: str | None = None
    next_linked: bool | None = None  # its prev equals this record's mac
    is_head: bool = False  # the chain's signed head is this record
    searched: int = 0  # entries searched each way


def _e(v: Any) -> str:
    return escape("" if v is None else str(v))


def _ms(v: Any) -> str:
    return "" if v is None else f"{float(v):.1f}"


def _chain_status(rec: dict[str, Any], links: ChainLinks) -> str:
    seq = rec.get("seq")
    if seq == 0:
        before = "first record of its chain"
    elif links.prev_sid is None:
        before = f"previous record (seq {_e(seq if not isinstance(seq, int) else seq - 1)}) not found in the newest {links.searched} entries before it (archived, or further back)"
    elif links.prev_linked:
        before = "linked to the previous record (prev = its mac)"
    else:
        before = "BROKEN: prev does not match the previous record's mac"
    if links.next_sid is not None:
        after = "the next record links to it" if links.next_linked else "BROKEN: the next record does not link to it"
    elif links.is_head:
        after = "the chain's signed head (newest record)"
    else:
        after = f"next record not found within {links.searched} entries after it"
    return f"{before}; {after}"


def render(sid: str, rec: dict[str, Any], links: ChainLinks, back_url: str) -> str:
    """The body of the record page."""
    nav = [f'<a id=back href="{escape(back_url)}">back to the overview</a>']
    if links.prev_sid:
        nav.append(f'<a id=prev href="/admin/audit/{escape(links.prev_sid)}">← previous in chain</a>')
    if links.next_sid:
        nav.append(f'<a id=next href="/admin/audit/{escape(links.next_sid)}">next in chain →</a>')
    outcome = str(rec.get("outcome"))
    facts = [
        ("time (UTC)", rec.get("time")),
        ("endpoint", rec.get("endpoint")),
        ("app / key", f"{rec.get('app')} / {rec.get('key_id')}"),
        ("model", rec.get("model")),
        ("policy", f"{rec.get('policy')} @ {rec.get('policy_version')}"),
        ("status", f"{rec.get('status')} {rec.get('error_code') or ''}"),
        ("stream", rec.get("stream")),
        ("response cache", rec.get("response_cache")),
        ("PII found", ", ".join(f"{k}×{v}" for k, v in sorted((rec.get("pii") or {}).items())) or "none"),
    ]
    usage = rec.get("usage") or {}
    if usage:
        facts.append(
            (
                "tokens",
                f"{usage.get('prompt_tokens')} in ({usage.get('cached_tokens') or 0} cached), "
                f"{usage.get('completion_tokens')} out",
            )
        )
    fact_rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    sig = (
        "<span class=ok>valid</span>"
        if links.signature_ok
        else "<span class=bad>INVALID (record edited or forged)</span>"
    )
    body = f"""<h1>Audit record {_e(rec.get("id"))}</h1>
<p class=nav>{" · ".join(nav)}</p>
<p>outcome <b id=outcome class="{escape(outcome)}">{escape(outcome)}</b> · stream id {escape(sid)}</p>
<table id=facts class=facts>{fact_rows}</table>
<h2>Signature and chain</h2>
<p id=signature class={"ok" if links.signature_ok else "bad"}>Signature: {"valid" if links.signature_ok else "INVALID (record edited)"}</p>
<table class=facts><tr><th>chain</th><td>{_e(rec.get("chain"))}</td></tr>
<tr><th>seq</th><td>{_e(rec.get("seq"))}</td></tr>
<tr><th>signature</th><td>{sig}</td></tr>
<tr><th>chain status</th><td id=chain-status>{_chain_status(rec, links)}</td></tr></table>
<h2>Masked prompt</h2>{_text("prompt", rec)}
<h2>Masked answer</h2>{_text("answer", rec)}
<h2>Decisions</h2>{_decisions(rec)}
<h2>Latency</h2>{_latency(rec)}
<h2>Backend and fallback attempts</h2>{_attempts(rec)}
{_schema(rec)}
<details><summary id=show-json>The signed record as stored (JSON)</summary>
<pre id=record>{escape(orjson.dumps(rec, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())}</pre></details>"""
    return body


def _text(name: str, rec: dict[str, Any]) -> str:
    text = rec.get(name)
    if text is None:
        why = (
            "not kept (policy audit.content: off)"
            if rec.get("content") == "off"
            else "none (refused or failed before it existed)"
        )
        return f"<p id={name} class=muted>{why}</p>"
    return f"<pre id={name} class=text>{escape(str(text))}</pre>"


def _decisions(rec: dict[str, Any]) -> str:
    ds = rec.get("decisions") or []
    if not ds:
        return "<p id=decisions class=muted>No guardrail decision: nothing matched a rule.</p>"
    rows = "".join(
        f"<tr><td>{_e(d.get('guardrail'))}</td><td>{_e(d.get('rule'))}</td><td>{_e(d.get('action'))}</td>"
        f"<td>{_e(d.get('mode'))}</td><td>{_e(d.get('score'))}</td><td>{_e(d.get('count', ''))}</td></tr>"
        for d in ds
    )
    return (
        "<table id=decisions><thead><tr><th>guardrail</th><th>rule</th><th>action</th><th>mode</th>"
        f"<th>score</th><th>count</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _latency(rec: dict[str, Any]) -> str:
    lat = rec.get("latency_ms") or {}
    total, guard, ttft = lat.get("total"), lat.get("guardrails"), lat.get("ttft")
    rows = [("input guardrails", guard), ("time to first token", ttft)]
    if total is not None and guard is not None:
        rows.append(("backend, output guardrails and the rest", max(float(total) - float(guard), 0.0)))
    rows.append(("total", total))
    trs = "".join(f"<tr><th>{escape(k)}</th><td class=num>{_ms(v)}</td></tr>" for k, v in rows)
    return f"<table id=latency class=facts><thead><tr><th>stage</th><th>ms</th></tr></thead>{trs}</table>"


def _attempts(rec: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{i}</td><td>{_e(a.get('backend'))}</td><td class=failed>failed: {_e(a.get('reason'))}</td></tr>"
        for i, a in enumerate(rec.get("attempts") or [], 1)
    )
    n = len(rec.get("attempts") or []) + 1
    served = rec.get("backend")
    last = "served" if served and served != "none" and rec.get("outcome") == "allowed" else "answered"
    rows += f"<tr><td>{n}</td><td>{_e(served)}</td><td>{last}</td></tr>"
    note = f"<p>Fallback reason: <b>{_e(rec.get('fallback_reason'))}</b></p>" if rec.get("fallback_reason") else ""
    return (
        f"{note}<table id=attempts><thead><tr><th>#</th><th>backend</th><th>result</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _schema(rec: dict[str, Any]) -> str:
    s = rec.get("schema")
    if not s:
        return ""
    state = "valid" if s.get("valid") else "VIOLATED"
    items = "".join(f"<li>{_e(v)}</li>" for v in s.get("violations") or [])
    return (
        f"<h2>Schema contract</h2><p id=schema>{state} after {_e(s.get('attempts'))} attempt(s)</p>"
        f"{f'<ul>{items}</ul>' if items else ''}"
    )
