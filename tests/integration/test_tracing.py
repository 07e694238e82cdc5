"""OpenTelemetry traces of a real gateway, received by an OTLP/HTTP receiver on loopback and decoded
with opentelemetry-proto: one span per stage under the request's root, the request id on each,
the client's traceparent honoured, and no prompt text or PII value anywhere in what was exported."""

from __future__ import annotations

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from procs import Gateway, RedisProc, free_port, gateway_config

NAME, EMAIL = "Philomena Cruikshank", "philomena.c@example.com"
MARKER = "zanzibarquest"  # a word of the prompt that no attribute may carry
# (mid-sentence and lower case: a capitalised word before a colon reads as a chat speaker's name)
PROMPT = f"I am {NAME}, write to {EMAIL} about the {MARKER} order please"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Receiver:
    """An OTLP/HTTP traces endpoint: keeps every body it gets and the spans decoded from it."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.bodies: list[bytes] = []
        self.spans: list = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.bodies.append(body)
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                for rs in req.resource_spans:
                    for ss in rs.scope_spans:
                        outer.spans.extend(ss.spans)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, rid: str) -> list:
        return [s for s in self.spans if _attrs(s).get("mixguard.request_id") == rid]


def _attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        v = kv.value
        kind = v.WhichOneof("value")
        out[kv.key] = [x.string_value for x in v.array_value.values] if kind == "array_value" else getattr(v, kind)
    return out


@pytest.fixture(scope="module")
def traced(primary):
    rx = Receiver()
    rp = RedisProc().start()
    cfg = gateway_config(primary.params(), redis_url=rp.url, extra={"tracing": {"endpoint": rx.url}})
    g = Gateway(cfg, env={"OTEL_BSP_SCHEDULE_DELAY": "100", "MIXGUARD_AUDIT_KEY": "trace-test"})
    yield g, rx
    g.stop()
    rp.stop()
    rx.server.shutdown()


def _wait(rx: Receiver, rid: str, names: set[str]) -> dict:
    deadline = time.time() + 20
    while time.time() < deadline:
        got = {s.name: s for s in rx.of(rid)}
        if names <= set(got):
            return got
        time.sleep(0.1)
    raise AssertionError(f"spans of {rid}: {sorted(s.name for s in rx.of(rid))}, wanted {sorted(names)}")


STAGES = {"authenticate", "admit", "parse", "guard_input", "route", "backend_call", "guard_output", "record"}


def test_a_request_is_one_trace_of_stage_spans_with_its_request_id_and_no_pii(traced):
    g, rx = traced
    rid = "trace-" + uuid.uuid4().hex[:12]
    r = httpx.post(
        g.url + "/v1/chat/completions",
        headers={
            "Authorization": f"Bearer {Gateway.KEY}",
            "x-request-id": rid,
            "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
        },
        json={"model": "mixtral", "messages": [{"role": "user", "content": PROMPT}]},
        timeout=30,
    )
    assert r.status_code == 200
    spans = _wait(rx, rid, {"mixguard chat", *STAGES})
    root = spans["mixguard chat"]
    assert root.trace_id.hex() == TRACE_ID and root.parent_span_id.hex() == PARENT_ID  # the client's trace
    for name in STAGES - {"backend_call"}:
        assert spans[name].parent_span_id == root.span_id, name
        assert spans[name].trace_id == root.trace_id
    assert spans["backend_call"].parent_span_id == spans["route"].span_id
    assert _attrs(spans["backend_call"])["mixguard.backend"] == "sglang"
    gi = _attrs(spans["guard_input"])
    assert gi["mixguard.pii.PERSON"] == 1 and gi["mixguard.pii.EMAIL_ADDRESS"] == 1
    assert "pii.PERSON:mask" in gi["mixguard.decisions"]
    top = _attrs(root)
    assert top["http.response.status_code"] == 200 and top["mixguard.app"] == "test-app"
    assert top["mixguard.model"] == "mixtral" and top["mixguard.backend"] == "sglang"
    # no prompt text, no PII value: neither in any attribute nor anywhere in the exported bytes
    for s in rx.of(rid):
        for v in _attrs(s).values():
            text = str(v)
            assert MARKER not in text and "Philomena" not in text and "Cruikshank" not in text and "@" not in text
    blob = b"".join(rx.bodies)
    for value in (MARKER, NAME, "Philomena", "Cruikshank", EMAIL):
        assert value.encode() not in blob


def test_streams_and_refused_requests_are_traced_too(traced):
    g, rx = traced
    rid = "trace-s-" + uuid.uuid4().hex[:10]
    with httpx.stream(
        "POST",
        g.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {Gateway.KEY}", "x-request-id": rid},
        json={"model": "mixtral", "stream": True, "messages": [{"role": "user", "content": PROMPT}]},
        timeout=30,
    ) as r:
        body = b"".join(r.iter_bytes())
    assert r.status_code == 200 and b"[DONE]" in body
    spans = _wait(rx, rid, {"mixguard chat", *STAGES})
    assert _attrs(spans["guard_output"])["mixguard.stream"] is True
    assert _attrs(spans["backend_call"])["mixguard.stream"] is True
    assert spans["backend_call"].parent_span_id == spans["route"].span_id
    # a wrong key: the root and authenticate spans say so, by error type and code only
    bad = "trace-u-" + uuid.uuid4().hex[:10]
    r = httpx.post(
        g.url + "/v1/chat/completions",
        headers={"Authorization": "Bearer sk-wrong", "x-request-id": bad},
        json={"model": "mixtral", "messages": [{"role": "user", "content": PROMPT}]},
        timeout=30,
    )
    assert r.status_code == 401
    spans = _wait(rx, bad, {"mixguard chat", "authenticate", "record"})
    auth = _attrs(spans["authenticate"])
    assert auth["error.type"] == "Unauthorized" and spans["authenticate"].status.code == 2  # STATUS_CODE_ERROR
    assert _attrs(spans["mixguard chat"])["http.response.status_code"] == 401
    assert MARKER.encode() not in b"".join(rx.bodies)


def test_tracing_off_leaves_the_gateway_untouched(monkeypatch):
    from proxy.app import Gateway as Gw
    from proxy.settings import TracingSettings
    from proxy.tracing import instrument, traces_endpoint

    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    assert traces_endpoint(TracingSettings()) is None
    assert traces_endpoint(TracingSettings(endpoint="http://c:4318/")) == "http://c:4318/v1/traces"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"}
    assert traces_endpoint(TracingSettings(), env) == "http://otel:4318/v1/traces"
    assert traces_endpoint(TracingSettings(enabled=False), env) is None
    assert traces_endpoint(TracingSettings(), {**env, "OTEL_SDK_DISABLED": "true"}) is None

    from proxy.settings import parse_config

    cfg = parse_config(
        "model_list: [{model_name: m, litellm_params: {model: openai/m, api_base: 'http://127.0.0.1:9/v1'}}]\n"
        "mixguard: {audit: {enabled: false}, redis_url: 'redis://127.0.0.1:9/0'}\n"
    )
    gw = Gw(cfg)
    assert instrument(gw) is None
    assert "_authenticate" not in vars(gw) and "request_done" not in vars(gw)  # the class's own methods
    assert "_guard_input" not in vars(gw) and "_answer" not in vars(gw)
