"""The embedded Valkey heals by itself (issue 13, item 1): a SIGKILL is followed by a restart on
the same port, with its append-only file, so the audit stream survives and requests succeed again
within 5 s. It listens with a random password."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from procs import ROOT, Gateway, Standin, gateway_config

HEADERS = {"Authorization": f"Bearer {Gateway.KEY}"}


def valkey_pids(data_dir: Path) -> list[int]:
    """Processes whose working directory is the embedded server's data directory."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if Path(os.readlink(p / "cwd")) == data_dir and "valkey" in (p / "cmdline").read_text():
                    out.append(int(p.name))
            except OSError:
                continue
    return out


def ask(g: Gateway, rid: str) -> httpx.Response:
    return httpx.post(
        g.url + "/v1/chat/completions",
        headers={**HEADERS, "x-request-id": rid},
        json={"model": "mixtral", "messages": [{"role": "user", "content": "mail me at kit.ambrose@example.org"}]},
        timeout=10,
    )


def test_a_killed_embedded_valkey_comes_back_with_its_data(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "MIXGUARD_AUDIT_KEY": "embedded-test-key"}
    s = Standin()
    g = Gateway(gateway_config({"model": "openai/mixtral", "api_base": f"{s.url}/v1"}), env=env)
    try:
        for i in range(3):
            assert ask(g, f"req-before-{i:04d}").status_code == 200
        url_files = list((home / ".local/state/mixguard").glob("embedded-redis-*.url"))
        assert len(url_files) == 1 and oct(url_files[0].stat().st_mode & 0o777) == "0o600"
        url = url_files[0].read_text().strip()
        assert url.startswith("redis://:") and "@127.0.0.1:" in url  # a password, loopback only
        no_password = url.split("@")[1]
        try:
            redis.Redis.from_url("redis://" + no_password, socket_timeout=2).ping()
            raise AssertionError("the embedded server answered without its password")
        except redis.AuthenticationError:
            pass
        client = redis.Redis.from_url(url, socket_timeout=2)
        deadline = time.time() + 10
        while client.xlen("mixguard:audit") < 3 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.2)  # appendfsync everysec
        data_dirs = list((home / ".local/state/mixguard").glob("*/valkey"))
        assert len(data_dirs) == 1
        pids = valkey_pids(data_dirs[0].resolve())
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)
        killed = time.time()
        ok = None
        while time.time() - killed < 10:
            try:
                if ask(g, "req-after-0001").status_code == 200:
                    ok = time.time() - killed
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert ok is not None and ok < 5, f"no success within 5 s of the kill ({ok})"
        assert valkey_pids(data_dirs[0].resolve()) not in ([], pids)  # a new process
        time.sleep(1.0)
        out = subprocess.run(
            [sys.executable, "-m", "proxy.cli", "audit", "verify", "--config", str(g.config_path), "--quiet"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
        )
        ids = redis.Redis.from_url(url, socket_timeout=2).xrange("mixguard:audit")
        assert len(ids) >= 4, "records written before the kill were lost"
        assert out.returncode == 0, out.stdout + out.stderr  # nothing missing from the chain
        ready = httpx.get(g.url + "/health/ready", timeout=10).json()
        assert ready["checks"]["redis"]["ok"] is True
    finally:
        g.stop()
        s.stop()
