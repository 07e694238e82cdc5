"""SIGTERM stops the gateway within 10 s, letting an in-flight stream finish (issue 13, item 3), and
a policy reload never waits forever on another one."""

from __future__ import annotations

import signal
import threading
import time

import httpx

from procs import ROOT, Gateway, Standin, gateway_config


def test_sigterm_finishes_the_stream_in_flight_then_exits_within_10_s(redis_server):
    s = Standin()
    s.configure(token_ms=20)
    g = Gateway(gateway_config({"model": "openai/mixtral", "api_base": f"{s.url}/v1"}, redis_url=redis_server.url))
    try:
        words = " ".join(f"word{i}" for i in range(100))  # the stand-in echoes: about 2 s of tokens
        lines: list[str] = []
        with httpx.stream(
            "POST",
            g.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {Gateway.KEY}"},
            json={"model": "mixtral", "stream": True, "messages": [{"role": "user", "content": words}]},
            timeout=30,
        ) as r:
            it = r.iter_lines()
            lines.append(next(it))
            t0 = time.time()
            g.proc.send_signal(signal.SIGTERM)
            lines.extend(it)
        assert "data: [DONE]" in lines, lines[-3:]  # the stream in flight was finished, not cut
        g.proc.wait(10)
        assert time.time() - t0 < 10
        # uvicorn re-raises the signal once it has shut down gracefully: exit by SIGTERM, not SIGKILL
        assert g.proc.returncode in (0, -signal.SIGTERM)
    finally:
        g.stop()
        s.stop()


def test_a_reload_waits_for_another_only_up_to_its_timeout():
    from policies.store import PolicyStore

    store = PolicyStore(ROOT / "policies")
    store.LOCK_TIMEOUT_S = 0.2
    held = threading.Event()
    release = threading.Event()

    def stuck_reload() -> None:  # e.g. a reload busy with a huge file
        with store._lock:
            held.set()
            release.wait(5)

    t = threading.Thread(target=stuck_reload)
    t.start()
    held.wait(5)
    t0 = time.perf_counter()
    report = store.reload()
    assert time.perf_counter() - t0 < 1.0
    assert not report.ok and "another reload is still running" in next(iter(report.errors.values()))
    assert "default" in store.policies  # the active set is untouched
    release.set()
    t.join()
    assert store.reload().ok
