"""What happened over a time range: counts per time bucket, top lists and the values that occur,
aggregated on the server over the audit records in the range (for /admin/audit).

The work per page view is bounded: at most `max_scan` records are read, newest first (stream ids
are write times in ms, so a range is one XREVRANGE walk); when the bound is hit the overview says
which part of the range it covers.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .query import Filters, parse_time

#: Preset ranges: (seconds, bucket seconds); about 24 to 30 bars each.
PRESETS: dict[str, tuple[int, int]] = {
    "1h": (3600, 120),
    "24h": (86400, 3600),
    "7d": (7 * 86400, 6 * 3600),
    "30d": (30 * 86400, 86400),
}
DEFAULT_PRESET = "24h"
_STEPS = (60, 120, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
#: Outcomes in the order the charts stack them.
OUTCOMES = ("allowed", "blocked", "rejected", "failed", "unauthorized", "client_closed")
FACETS = ("app", "key", "outcome", "rule", "entity", "backend", "status", "policy")
PAGE_SIZE = 50
TOP = 8


@dataclass(frozen=True)
class TimeRange:
    """[start, end) in epoch seconds, cut into buckets of `bucket_s`."""

    start: float
    end: float
    bucket_s: int
    preset: str  # a key of PRESETS, or "custom"

    @classmethod
    def from_query(cls, q: Mapping[str, str], now: float | None = None) -> TimeRange:
        """`range=1h|24h|7d|30d`, or `range=custom` with `since` (and optional `until`) in any form
        `parse_time` reads; a bare `since`/`until` means custom too. ValueError names a bad value."""
        now = time.time() if now is None else now
        preset = q.get("range") or ("custom" if q.get("since") or q.get("until") else DEFAULT_PRESET)
        if preset in PRESETS:
            span, bucket = PRESETS[preset]
            end = math.ceil(now / bucket) * bucket  # whole buckets: bars do not shift within one
            return cls(end - span, end, bucket, preset)
        if preset != "custom":
            raise ValueError(f"unknown range {preset!r}: use one of {', '.join(PRESETS)} or custom")
        until = parse_time(q.get("until")) or now
        since = parse_time(q.get("since"))
        if since is None:
            since = until - PRESETS[DEFAULT_PRESET][0]
        if since >= until:
            raise ValueError("'since' must be before 'until'")
        bucket = next((s for s in _STEPS if (until - since) / s <= 40), _STEPS[-1])
        return cls(since, until, bucket, "custom")  # exact bounds: the table and export agree with them

    @property
    def n_buckets(self) -> int:
        return max(1, math.ceil((self.end - self.start) / self.bucket_s))

    def bounds_ms(self) -> tuple[str, str]:
        """Stream id bounds (inclusive) of the range."""
        return f"{int(self.start * 1000)}-0", f"{int(self.end * 1000) - 1}-18446744073709551615"

    def bucket_of(self, ts: float) -> int:
        return min(self.n_buckets - 1, max(0, int((ts - self.start) // self.bucket_s)))

    def labels(self) -> list[str]:
        fmt = "%H:%M" if self.bucket_s < 86400 and self.end - self.start <= 86400 else "%m-%d %H:%M"
        if self.bucket_s >= 86400:
            fmt = "%m-%d"
        return [
            datetime.fromtimestamp(self.start + i * self.bucket_s, timezone.utc).strftime(fmt)
            for i in range(self.n_buckets)
        ]

    def iso(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M")


def _is_schema_violation(r: dict[str, Any]) -> bool:
    return (r.get("schema") or {}).get("valid") is False


@dataclass
class Overview:
    """Aggregates of the records of one range that match the filters, plus the values of every
    filter field that occur in the range (the filters' select options)."""

    range: TimeRange
    filters: Filters
    page: int = 1
    max_scan: int = 20_000
    scanned: int = 0
    matched: int = 0
    capped_at: float | None = None  # the oldest time read, when the bound stopped the scan
    outcomes: dict[str, list[int]] = field(default_factory=dict)
    pii_series: dict[str, list[int]] = field(default_factory=dict)
    fallbacks: list[int] = field(default_factory=list)
    schema_violations: list[int] = field(default_factory=list)
    pii: Counter[str] = field(default_factory=Counter)
    apps: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    backends: Counter[str] = field(default_factory=Counter)
    options: dict[str, set[str]] = field(default_factory=lambda: {f: set() for f in FACETS})
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.range.n_buckets
        self.outcomes = {o: [0] * n for o in OUTCOMES}
        self.fallbacks, self.schema_violations = [0] * n, [0] * n
        self._pii_by_bucket: list[Counter[str]] = [Counter() for _ in range(n)]

    async def scan(self, records: AsyncIterator[tuple[str, dict[str, Any]]]) -> Overview:
        """Feed the range's records, newest first (see `aiter_stream(..., reverse=True)`)."""
        first = (self.page - 1) * PAGE_SIZE
        async for sid, r in records:
            if self.scanned >= self.max_scan:
                self.capped_at = _sid_time(sid)
                break
            self.scanned += 1
            self._collect_options(r)
            if not self.filters.match(r):
                continue
            if first <= self.matched < first + PAGE_SIZE:
                self.rows.append((sid, r))
            self.matched += 1
            self._count(_sid_time(sid), r)
        self.pii_series = self._top_pii_series()
        return self

    def _collect_options(self, r: dict[str, Any]) -> None:
        o = self.options
        for name, value in (
            ("app", r.get("app")),
            ("key", r.get("key_id")),
            ("outcome", r.get("outcome")),
            ("backend", r.get("backend")),
            ("policy", r.get("policy")),
        ):
            if value:
                o[name].add(str(value))
        if r.get("status") is not None:
            st = str(r.get("status"))
            o["status"].update((st, st[:1] + "xx"))
        o["entity"].update(str(k) for k in (r.get("pii") or {}))
        for d in r.get("decisions") or []:
            rule = str(d.get("rule") or "")
            if rule:
                o["rule"].add(rule)
                if "." in rule:
                    o["rule"].add(rule.split(".", 1)[0] + ".*")

    def _count(self, ts: float, r: dict[str, Any]) -> None:
        b = self.range.bucket_of(ts)
        outcome = str(r.get("outcome"))
        if outcome in self.outcomes:
            self.outcomes[outcome][b] += 1
        if r.get("fallback_reason"):
            self.fallbacks[b] += 1
        if _is_schema_violation(r):
            self.schema_violations[b] += 1
        for entity, n in (r.get("pii") or {}).items():
            self.pii[str(entity)] += int(n)
            self._pii_by_bucket[b][str(entity)] += int(n)
        self.apps[str(r.get("app"))] += 1
        self.keys[str(r.get("key_id"))] += 1
        if r.get("backend"):
            self.backends[str(r.get("backend"))] += 1
        for d in r.get("decisions") or []:
            self.rules[f"{d.get('rule')}:{d.get('action')}"] += 1

    def _top_pii_series(self) -> dict[str, list[int]]:
        """The most frequent entity types as their own series, the rest as 'other'."""
        top = [e for e, _ in self.pii.most_common(5)]
        series = {e: [c[e] for c in self._pii_by_bucket] for e in top}
        if len(self.pii) > len(top):
            series["other"] = [sum(n for e, n in c.items() if e not in top) for c in self._pii_by_bucket]
        return series

    # --- figures the page shows ------------------------------------------------------------------
    @property
    def totals(self) -> dict[str, int]:
        return {
            "requests": self.matched,
            "blocked": sum(self.outcomes["blocked"]),
            "pii_entities": sum(self.pii.values()),
            "fallbacks": sum(self.fallbacks),
            "schema_violations": sum(self.schema_violations),
        }

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.matched / PAGE_SIZE))

    def top(self, counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, float(v)) for k, v in counter.most_common(TOP)]


def _sid_time(sid: str) -> float:
    return int(sid.split("-", 1)[0]) / 1000
