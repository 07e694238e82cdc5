"""No pattern can freeze the gateway (issue 13, item 4): policy regexes (topic rules and custom
recognizers) run on RE2, and a pattern RE2 cannot run is refused at load with file:line."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import yaml

from procs import ROOT, Gateway, Standin, gateway_config

CATASTROPHIC = r"(a+)+$"  # exponential on "aaaa…b" in a backtracking engine
EVIL = "a" * 40 + "b"  # about 2^40 steps for Python's re


def test_catastrophic_patterns_do_not_stall_the_gateway(redis_server, tmp_path):
    d = tmp_path / "pol"
    d.mkdir()
    (d / "default.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "default",
                "pii": {
                    "recognizers": [
                        {
                            "name": "evil",
                            "entity": "EVIL_ID",
                            "patterns": [{"name": "evil", "regex": CATASTROPHIC, "score": 0.9}],
                        }
                    ]
                },
                "topics": {"check_output": True, "deny": [{"name": "evil", "regex": [CATASTROPHIC]}]},
            }
        )
    )
    s = Standin()
    g = Gateway(
        gateway_config(
            {"model": "openai/mixtral", "api_base": f"{s.url}/v1"},
            redis_url=redis_server.url,
            extra={"policies_dir": str(d)},
        )
    )
    try:
        # One ordinary request first: what any first request pays once (lazy imports, first use of
        # each recognizer) is not what this test is about.
        warm = httpx.post(
            g.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {Gateway.KEY}"},
            json={"model": "mixtral", "messages": [{"role": "user", "content": "id 12345, call Ann Lee"}]},
            timeout=60,
        )
        assert warm.status_code == 200
        results: list[int] = []

        def attack() -> None:  # on the input, and (the stand-in echoes) on the model's output
            for _ in range(3):
                r = httpx.post(
                    g.url + "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {Gateway.KEY}"},
                    json={"model": "mixtral", "messages": [{"role": "user", "content": f"id {EVIL}"}]},
                    timeout=60,
                )
                results.append(r.status_code)

        t = threading.Thread(target=attack)
        t.start()
        worst = 0.0
        while t.is_alive():
            t0 = time.perf_counter()
            assert httpx.get(g.url + "/health/live", timeout=10).status_code == 200
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.02)
        t.join()
        assert results == [200, 200, 200]
        # 2^40 backtracking steps would hold the loop for hours; 0.5 s leaves room for a busy 2-core
        # machine (104 ms was seen while a benchmark ran beside the suite) and still catches a stall
        assert worst < 0.5, f"/health/live took {worst * 1000:.0f} ms while the patterns ran"
    finally:
        g.stop()
        s.stop()


def test_a_pattern_that_needs_backtracking_is_refused_at_load_with_file_and_line(tmp_path):
    d = tmp_path / "pol"
    d.mkdir()
    (d / "default.yaml").write_text("name: default\ntopics:\n  deny:\n    - name: repeat\n      regex: ['(\\w)\\1']\n")
    out = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "policy", "validate", str(d)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "default.yaml:5" in out.stdout and "linear-time engine (RE2)" in out.stdout, out.stdout
