"""Prometheus metrics of the gateway, in one registry served at GET /metrics."""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _CountsSource(Protocol):
    counts: Mapping[str, int]


class _PiiAnalysisCollector:
    """mixguard_pii_analysis_total{source}, read at scrape time from the `counts` of the PII
    analyzers handed to `observe` (the guardrails package keeps its own counts and never imports
    the proxy). Held by weak reference: an analyzer that is gone stops counting."""

    NAME = "mixguard_pii_analysis"
    HELP = "Texts the PII analyzer was asked about, by where the answer came from"
    SOURCES = ("memory", "redis", "analyzed")

    def __init__(self) -> None:
        self._analyzers: weakref.WeakSet[Any] = weakref.WeakSet()

    def observe(self, analyzer: _CountsSource) -> None:
        self._analyzers.add(analyzer)

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.NAME, self.HELP, labels=["source"])

    def collect(self) -> Iterator[Metric]:
        analyzers = list(self._analyzers)
        if not analyzers:  # PII guardrail off: no series
            return
        totals: dict[str, float] = {}
        for analyzer in analyzers:
            for source, n in dict(analyzer.counts).items():
                totals[source] = totals.get(source, 0) + n
        family = CounterMetricFamily(self.NAME, self.HELP, labels=["source"])
        for source in (*self.SOURCES, *sorted(set(totals) - set(self.SOURCES))):
            family.add_metric([source], totals.get(source, 0))
        yield family


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mixguard_requests_total",
            "Requests by route, model, backend and status",
            ["route", "model", "backend", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "mixguard_request_duration_seconds",
            "Request latency (whole response)",
            ["route", "model", "backend", "status"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "mixguard_tokens_total",
            "Tokens by direction (in, out, cached)",
            ["model", "backend", "direction"],
            registry=r,
        )
        self.fallbacks = Counter(
            "mixguard_fallbacks_total", "Requests served by a fallback deployment", ["model", "backend"], registry=r
        )
        self.backend_errors = Counter(
            "mixguard_backend_errors_total", "Failed backend attempts", ["backend", "kind"], registry=r
        )
        self.guardrail_decisions = Counter(
            "mixguard_guardrail_decisions_total", "Guardrail decisions", ["guardrail", "action"], registry=r
        )
        self.pii_analysis = _PiiAnalysisCollector()
        r.register(self.pii_analysis)
        self.response_cache = Counter(
            "mixguard_response_cache_total",
            "Response cache lookups by result (hit, miss, error)",
            ["result"],
            registry=r,
        )
        self.rate_limited = Counter(
            "mixguard_rate_limited_total",
            "Requests refused by a key's limit (requests, tokens), and limiter errors (error)",
            ["limit"],
            registry=r,
        )
        self.audit_records = Counter(
            "mixguard_audit_records_total",
            "Audit records written, by destination (redis, spool, lost)",
            ["destination"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = _Metrics()


def observe_pii_analyzer(analyzer: _CountsSource) -> None:
    """Expose `analyzer.counts` (a PiiAnalyzer's) as mixguard_pii_analysis_total{source}."""
    METRICS.pii_analysis.observe(analyzer)
