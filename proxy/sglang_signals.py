"""SGLang's own signals, read from a deployment's `/metrics` (`--enable-metrics`).

How busy a deployment is (running and queued requests, KV cache use) and how well its prefix cache
serves (cache hit rate, prompt and cached token counters). The balancer adds the queue to a
deployment's load, so a replica that other gateways keep busy gets fewer new conversations; the
gateway's own /metrics re-exports the figures per deployment for operators (proxy/metrics.py).

Parsing uses prometheus_client's text parser on the few lines wanted: a real SGLang server also
exports histograms with hundreds of lines, which need no parsing here.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

#: sample name -> how the samples of several schedulers (data-parallel ranks) combine
WANTED = {
    "sglang:num_running_reqs": "sum",
    "sglang:num_queue_reqs": "sum",
    "sglang:token_usage": "max",
    "sglang:cache_hit_rate": "mean",
    "sglang:gen_throughput": "sum",
    "sglang:prompt_tokens_total": "sum",
    "sglang:cached_tokens_total": "sum",
}


@dataclass(frozen=True)
class SGLangSignals:
    """One scrape of one deployment; a field is None when the server did not export it."""

    running: float | None = None
    queued: float | None = None
    token_usage: float | None = None  # share of the KV cache in use, 0..1
    cache_hit_rate: float | None = None  # as SGLang reports it, 0..1
    gen_throughput: float | None = None  # tokens/s
    prompt_tokens: float | None = None  # counters since the server started
    cached_tokens: float | None = None


_FIELDS = {
    "sglang:num_running_reqs": "running",
    "sglang:num_queue_reqs": "queued",
    "sglang:token_usage": "token_usage",
    "sglang:cache_hit_rate": "cache_hit_rate",
    "sglang:gen_throughput": "gen_throughput",
    "sglang:prompt_tokens_total": "prompt_tokens",
    "sglang:cached_tokens_total": "cached_tokens",
}


def _sample_name(line: str) -> str:
    end = len(line)
    for sep in ("{", " "):
        i = line.find(sep)
        if i != -1:
            end = min(end, i)
    return line[:end]


def parse(text: str) -> SGLangSignals | None:
    """The signals in a Prometheus text exposition; None when it holds none of SGLang's
    (another OpenAI-compatible server, or sglang-router, whose own metrics are named otherwise)."""
    lines = [ln for ln in text.splitlines() if ln and ln[0] != "#" and _sample_name(ln) in WANTED]
    if not lines:
        return None
    values: dict[str, list[float]] = {}
    try:
        for family in text_string_to_metric_families("\n".join(lines) + "\n"):
            for sample in family.samples:
                if sample.name in WANTED:
                    values.setdefault(sample.name, []).append(float(sample.value))
    except ValueError:  # a line the parser refuses: treat the scrape as empty, not as an outage
        return None
    out: dict[str, float] = {}
    for name, vals in values.items():
        how = WANTED[name]
        out[_FIELDS[name]] = sum(vals) if how == "sum" else max(vals) if how == "max" else sum(vals) / len(vals)
    return SGLangSignals(**out)
