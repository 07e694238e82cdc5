"""The audit CLI finds the gateway's Redis from --config (issue 13, item 2), and every CLI error is
one clear line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from procs import ROOT, Gateway, Standin, gateway_config


def mixguard(*args: str, home: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MIXGUARD_AUDIT_KEY": "cli-test-key", **({"HOME": home} if home else {})}
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )


@pytest.mark.parametrize(
    "args",
    [
        ("audit", "tail", "-n", "1"),
        ("audit", "verify"),
        ("audit", "search", "--app", "x"),
        ("audit", "export", "--format", "csv"),
    ],
    ids=lambda a: a[1],
)
def test_an_unreachable_redis_is_one_clear_line(args):
    out = mixguard(*args, "--redis-url", "redis://127.0.0.1:1/0")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "cannot reach Redis" in out.stderr


def test_a_missing_config_is_one_clear_line(tmp_path):
    out = mixguard("audit", "tail", "--config", str(tmp_path / "nope.yaml"))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "nope.yaml" in out.stderr


def test_with_config_the_cli_reads_that_gateways_embedded_redis_not_the_last_started(tmp_path):
    home = str(tmp_path / "home")
    os.makedirs(home)
    s = Standin()
    gateways = []
    try:
        for name in ("a", "b"):  # no redis_url: each starts its own embedded Valkey
            cfg = gateway_config({"model": "openai/mixtral", "api_base": f"{s.url}/v1"})
            g = Gateway(cfg, env={"HOME": home, "MIXGUARD_AUDIT_KEY": "cli-test-key"})
            gateways.append(g)
            r = httpx.post(
                g.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {Gateway.KEY}", "x-request-id": f"req-{name}-000001"},
                json={"model": "mixtral", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
            assert r.status_code == 200
        time.sleep(1.0)  # the audit writer flushes in the background
        for g, mine, other in (
            (gateways[0], "req-a-000001", "req-b-000001"),
            (gateways[1], "req-b-000001", "req-a-000001"),
        ):
            out = mixguard("audit", "tail", "-n", "5", "--config", str(g.config_path), home=home)
            assert out.returncode == 0, out.stderr
            assert mine in out.stdout and other not in out.stdout
    finally:
        for g in gateways:
            g.stop()
        s.stop()
