"""Reading the audit stream: filters shared by the CLI and the /admin/audit page."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

import orjson

_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])(?:\s*ago)?$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str | None) -> float | None:
    """'2026-11-22T10:00', '2026-11-22', an epoch number, or relative: '15m', '2h ago', '7d'."""
    if value is None or not str(value).strip():
        return None
    v = str(value).strip()
    m = _REL.match(v)
    if m:
        return time.time() - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return float(v)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read time {v!r}: use ISO 8601 (2026-11-22T10:00), epoch seconds or 15m/2h/7d"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


@dataclass
class Filters:
    since: str | None = None
    until: str | None = None
    app: str | None = None
    key: str | None = None
    outcome: str | None = None  # allowed | blocked | failed | rejected | unauthorized
    rule: str | None = None  # a rule id, or a prefix ending in '.' or '*' (topic.*, pii.)
    entity: str | None = None  # PII entity type
    backend: str | None = None
    status: str | None = None  # 200, or a class: 4xx, 5xx
    policy: str | None = None

    @classmethod
    def from_mapping(cls, m: Any) -> Filters:
        return cls(**{f.name: (m.get(f.name) or None) for f in fields(cls)})

    def active(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def bounds_ms(self) -> tuple[str, str]:
        """Stream id bounds from since/until (ids start with the write time in ms)."""
        lo, hi = parse_time(self.since), parse_time(self.until)
        return (f"{int(lo * 1000)}-0" if lo is not None else "-", f"{int(hi * 1000)}-999999" if hi is not None else "+")

    def match(self, r: dict[str, Any]) -> bool:
        if self.app and r.get("app") != self.app:
            return False
        if self.key and r.get("key_id") != self.key:
            return False
        if self.outcome and r.get("outcome") != self.outcome:
            return False
        if self.backend and r.get("backend") != self.backend:
            return False
        if self.policy and r.get("policy") != self.policy:
            return False
        if self.status:
            st = str(r.get("status"))
            if self.status.endswith("xx") and len(self.status) == 3:
                if st[:1] != self.status[0]:
                    return False
            elif st != self.status:
                return False
        if self.entity and not (r.get("pii") or {}).get(self.entity):
            return False
        if self.rule:
            rules = [d.get("rule", "") for d in r.get("decisions") or []]
            prefix = self.rule.rstrip("*")
            if self.rule.endswith(("*", ".")):
                if not any(x.startswith(prefix) for x in rules):
                    return False
            elif self.rule not in rules:
                return False
        return True


def _decode(fields_: dict) -> dict[str, Any]:
    raw = fields_.get(b"r") if b"r" in fields_ else fields_.get("r")
    return orjson.loads(raw)


def _page(
    rows: list, start: str, end: str, page: int, reverse: bool
) -> tuple[list[tuple[str, dict[str, Any]]], tuple[str, str] | None]:
    """Decoded rows of one XRANGE/XREVRANGE page, and the bounds of the next page (None: last)."""
    out = [((sid.decode() if isinstance(sid, bytes) else sid), _decode(f)) for sid, f in rows]
    if len(rows) < page:
        return out, None
    last = "(" + out[-1][0]
    return out, ((start, last) if reverse else (last, end))


def iter_stream(
    client: Any, stream: str, start: str = "-", end: str = "+", page: int = 1000, reverse: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(stream id, record) in stream order (or newest first), paged; sync client."""
    bounds: tuple[str, str] | None = (start, end)
    while bounds is not None:
        lo, hi = bounds
        rows = client.xrevrange(stream, hi, lo, count=page) if reverse else client.xrange(stream, lo, hi, count=page)
        out, bounds = _page(rows, lo, hi, page, reverse)
        yield from out


async def aiter_stream(
    client: Any, stream: str, start: str = "-", end: str = "+", page: int = 1000, reverse: bool = False
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The same, for the gateway's async client."""
    bounds: tuple[str, str] | None = (start, end)
    while bounds is not None:
        lo, hi = bounds
        rows = await (
            client.xrevrange(stream, hi, lo, count=page) if reverse else client.xrange(stream, lo, hi, count=page)
        )
        out, bounds = _page(rows, lo, hi, page, reverse)
        for item in out:
            yield item


def decode_heads(raw: dict) -> dict[str, dict[str, Any]]:
    return {(k.decode() if isinstance(k, bytes) else k): orjson.loads(v) for k, v in raw.items()}


CSV_COLUMNS = [
    "id",
    "time",
    "endpoint",
    "app",
    "key_id",
    "model",
    "backend",
    "fallback_reason",
    "policy",
    "policy_version",
    "outcome",
    "status",
    "error_code",
    "rules",
    "pii",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "guardrails_ms",
    "ttft_ms",
    "total_ms",
    "stream",
    "chain",
    "seq",
]


def csv_row(r: dict[str, Any]) -> list[Any]:
    u = r.get("usage") or {}
    lat = r.get("latency_ms") or {}
    return [
        r.get("id"),
        r.get("time"),
        r.get("endpoint"),
        r.get("app"),
        r.get("key_id"),
        r.get("model"),
        r.get("backend"),
        r.get("fallback_reason"),
        r.get("policy"),
        r.get("policy_version"),
        r.get("outcome"),
        r.get("status"),
        r.get("error_code"),
        " ".join(f"{d.get('rule')}:{d.get('action')}" for d in r.get("decisions") or []),
        " ".join(f"{k}={v}" for k, v in sorted((r.get("pii") or {}).items())),
        u.get("prompt_tokens"),
        u.get("completion_tokens"),
        u.get("cached_tokens"),
        lat.get("guardrails"),
        lat.get("ttft"),
        lat.get("total"),
        r.get("stream"),
        r.get("chain"),
        r.get("seq"),
    ]
