"""Prometheus metrics of the gateway, in one registry served at GET /metrics."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _CountsSource(Protocol):
    counts: Mapping[str, int]


class _PiiAnalysisCollector:
    """mixguard_pii_analysis_total{source}, read at scrape time from the `counts` of the PII
    analyzers handed to `observe` (the guardrails package keeps its own counts and never imports
    the proxy). Held by weak reference: an analyzer that is gone stops counting."""

    NAME = "mixguard_pii_analysis"
    HELP = (
        "Texts the PII analyzer was asked about, by where the answer came from; prewarm_skipped: answers "
        "not analysed ahead of the next turn because every worker was busy"
    )
    SOURCES = ("memory", "redis", "analyzed", "prewarm_skipped")

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


class _DeploymentSource(Protocol):
    def deployments(self) -> Iterator[tuple[str, Any]]: ...


#: family name -> (help, field of SGLangSignals, counter?)
_SGLANG_FAMILIES: dict[str, tuple[str, str, bool]] = {
    "mixguard_sglang_running_requests": ("Requests SGLang is running (sglang:num_running_reqs)", "running", False),
    "mixguard_sglang_queued_requests": (
        "Requests waiting in SGLang's queue (sglang:num_queue_reqs)",
        "queued",
        False,
    ),
    "mixguard_sglang_cache_hit_rate": (
        "Prefix cache hit rate SGLang reports (sglang:cache_hit_rate)",
        "cache_hit_rate",
        False,
    ),
    "mixguard_sglang_token_usage": ("Share of the KV cache in use (sglang:token_usage)", "token_usage", False),
    "mixguard_sglang_prompt_tokens": (
        "Prompt tokens SGLang has processed (sglang:prompt_tokens_total)",
        "prompt_tokens",
        True,
    ),
    "mixguard_sglang_cached_tokens": (
        "Prompt tokens served from SGLang's prefix cache (sglang:cached_tokens_total)",
        "cached_tokens",
        True,
    ),
}


class _DeploymentCollector:
    """Each deployment's state in the router (up, in flight, cooldowns) and what its SGLang server
    reports on its own /metrics (running and queued requests, cache hit rate, KV cache use, token
    counters), read at scrape time from the routers handed to `observe` (held by weak reference).
    SGLang's figures are those of the last background check (`router_settings.health_check_interval`);
    a deployment without them (hosted, no --enable-metrics, checks off) has no sglang series."""

    def __init__(self) -> None:
        self._routers: weakref.WeakSet[Any] = weakref.WeakSet()

    def observe(self, router: _DeploymentSource) -> None:
        self._routers.add(router)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families are known at collect time only

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        labels = ["model", "backend"]
        up = GaugeMetricFamily(
            "mixguard_deployment_up",
            "1 while a deployment may take requests, 0 while it is cooling down or failing its health check",
            labels=labels,
        )
        in_flight = GaugeMetricFamily(
            "mixguard_deployment_in_flight",
            "Requests this gateway has in flight at a deployment (streams until they end)",
            labels=labels,
        )
        cooldowns = CounterMetricFamily(
            "mixguard_deployment_cooldowns",
            "Times a deployment was taken out (too many failures, or a failed health check)",
            labels=labels,
        )
        sglang = {
            name: (CounterMetricFamily if counter else GaugeMetricFamily)(name, help_, labels=labels)
            for name, (help_, _, counter) in _SGLANG_FAMILIES.items()
        }
        seen: set[tuple[str, str]] = set()
        for router in list(self._routers):
            for model, st in router.deployments():
                if (model, st.name) in seen:
                    continue
                seen.add((model, st.name))
                values = [model, st.name]
                up.add_metric(values, 1.0 if st.available(now) else 0.0)
                in_flight.add_metric(values, st.outstanding)
                cooldowns.add_metric(values, st.cooldowns)
                if st.signals is None:
                    continue
                for name, (_, attr, _) in _SGLANG_FAMILIES.items():
                    v = getattr(st.signals, attr)
                    if v is not None:
                        sglang[name].add_metric(values, v)
        if not seen:
            return
        yield from (up, in_flight, cooldowns, *sglang.values())


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
        self.balancer_picks = Counter(
            "mixguard_balancer_picks_total",
            "First choice of the balancer per request, by how it chose (affinity: the conversation's replica; "
            "overflow: its ring successor, the replica being busy; shuffle; least_busy; single)",
            ["model", "backend", "how"],
            registry=r,
        )
        self.deployments = _DeploymentCollector()
        r.register(self.deployments)

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = _Metrics()


def observe_pii_analyzer(analyzer: _CountsSource) -> None:
    """Expose `analyzer.counts` (a PiiAnalyzer's) as mixguard_pii_analysis_total{source}."""
    METRICS.pii_analysis.observe(analyzer)


def observe_deployments(router: _DeploymentSource) -> None:
    """Expose a router's deployments (state, SGLang's signals) on /metrics."""
    METRICS.deployments.observe(router)
