"""The `mixguard` console command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

#: Third-party loggers that log prompt text (Presidio's context words, litellm's request dumps).
CONTENT_LOGGERS = (
    "presidio-analyzer",
    "presidio-anonymizer",
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "httpx",
    "httpcore",
    "openai",
)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from policies.loader import PolicyError

    from .settings import ConfigError, load_config
    from .wiring import build_app

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"mixguard: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.mixguard.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in CONTENT_LOGGERS:  # they print request text at DEBUG: never let raw PII reach a log line
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    from guardrails.topics.embedder import EmbeddingModelMissing

    try:
        app = build_app(config)
    except PolicyError as exc:
        print(f"mixguard: invalid policy files:\n{exc}", file=sys.stderr)
        return 2
    except EmbeddingModelMissing as exc:
        print(f"mixguard: a policy has semantic topic rules, but {exc}", file=sys.stderr)
        return 2
    # The event loop shares the GIL with the analysis threads (spaCy and Presidio hold it): a 1 ms
    # switch interval instead of Python's 5 ms bounds how long /health/live or a small request
    # waits for it at each hand-over while a long text is analysed.
    sys.setswitchinterval(0.001)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level=config.mixguard.log_level,
        access_log=args.access_log,
        timeout_keep_alive=30,
        # SIGTERM: stop accepting, let in-flight requests and streams finish for up to this long, then
        # close them (orchestrators send SIGKILL after 30 s by default; we are out well before)
        timeout_graceful_shutdown=8,
    )
    return 0


def _standin(args: argparse.Namespace) -> int:
    import uvicorn

    from sglang_backend.standin import StandinConfig, create_standin_app

    replies: list[str] = []
    if args.replies_file:
        import json

        replies = json.loads(Path(args.replies_file).read_text())
    cfg = StandinConfig(
        model=args.model,
        replies=replies,
        ttft_ms=args.ttft_ms,
        token_ms=args.token_ms,
        error_rate=args.error_rate,
        hang=args.hang,
        drop_after=args.drop_after,
        cache_capacity_tokens=args.cache_tokens,
        tokenizer=args.tokenizer,
    )
    uvicorn.run(
        create_standin_app(cfg),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
    return 0


QUICKSTART_CONFIG = """\
# Written by `mixguard quickstart`: a stand-in SGLang on {standin_port}, embedded Redis.
model_list:
  - model_name: mixtral
    litellm_params:
      model: openai/mistralai/Mixtral-8x7B-Instruct-v0.1
      api_base: http://127.0.0.1:{standin_port}/v1
    model_info:
      id: sglang-standin
mixguard:
  admin_key: {admin}
  api_keys:
    - key: {key}
      app: quickstart
"""


def _quickstart(args: argparse.Namespace) -> int:
    """Stand-in + gateway + embedded Redis in one process tree, with examples to paste."""
    import subprocess

    key = "sk-mixguard-quickstart"
    cfg_path = Path(tempfile.mkdtemp(prefix="mixguard-")) / "config.yaml"
    admin = "sk-mixguard-admin-quickstart"
    cfg_path.write_text(QUICKSTART_CONFIG.format(standin_port=args.standin_port, key=key, admin=admin))
    exe = [sys.executable, "-m", "proxy.cli"]
    standin = subprocess.Popen([*exe, "standin", "--port", str(args.standin_port)])
    gateway = subprocess.Popen([*exe, "serve", "--config", str(cfg_path), "--port", str(args.port)])
    import urllib.request

    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/health/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
        if gateway.poll() is not None or standin.poll() is not None:
            print("mixguard: a process exited during start", file=sys.stderr)
            return 1
    base = f"http://127.0.0.1:{args.port}"
    print(
        f"""
mixguard is up: gateway {base}  (config {cfg_path}), stand-in SGLang on :{args.standin_port}, embedded Redis.

  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{"model": "mixtral", "messages": [{{"role": "user", "content": "Hello from curl"}}]}}'

  python -c "from openai import OpenAI; c = OpenAI(base_url='{base}/v1', api_key='{key}'); \\
r = c.chat.completions.create(model='mixtral', messages=[{{'role': 'user', 'content': 'Hello from openai'}}]); \\
print(r.choices[0].message.content)"

Every request leaves a signed audit record:  mixguard audit tail   or  {base}/admin/audit
(admin key {admin}). Policies: {Path("policies").resolve()}  (mixguard policy explain --policy default "some text").

Ctrl-C stops everything.""",
        flush=True,
    )
    try:
        while gateway.poll() is None and standin.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in (gateway, standin):
            p.terminate()
        for p in (gateway, standin):
            p.wait(timeout=10)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixguard", description="Guarded OpenAI-compatible LLM gateway")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--config", required=True, help="config file (LiteLLM format + mixguard: section)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    s.add_argument("--port", type=int, default=4000)
    s.add_argument("--access-log", action="store_true", help="log one line per request (method, path, status)")
    s.set_defaults(func=_serve)

    st = sub.add_parser("standin", help="run the CPU stand-in for SGLang's OpenAI-compatible server")
    st.add_argument("--host", default="127.0.0.1")
    st.add_argument("--port", type=int, default=30000)
    st.add_argument("--model", default="mistralai/Mixtral-8x7B-Instruct-v0.1")
    st.add_argument("--replies-file", help="JSON list of scripted answers, used in turn (default: echo)")
    st.add_argument("--ttft-ms", type=float, default=0.0)
    st.add_argument("--token-ms", type=float, default=0.0)
    st.add_argument("--error-rate", type=float, default=0.0)
    st.add_argument("--hang", action="store_true")
    st.add_argument("--drop-after", type=int, default=None)
    st.add_argument("--cache-tokens", type=int, default=200_000, help="radix cache capacity in tokens")
    st.add_argument("--tokenizer", help="tokenizer.json (default: bundled Mixtral tokenizer)")
    st.set_defaults(func=_standin)

    q = sub.add_parser("quickstart", help="stand-in + gateway + embedded Redis, with examples")
    q.add_argument("--port", type=int, default=4000)
    q.add_argument("--standin-port", type=int, default=30000)
    q.set_defaults(func=_quickstart)

    from policies.cli import add_parser as add_policy
    from sglang_backend.render import add_parser as add_sglang

    from .audit.cli import add_parser as add_audit

    add_policy(sub)
    add_audit(sub)
    add_sglang(sub)  # `mixguard sglang render`: launch profiles as commands and manifests
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every CLI error is one clear line, never a traceback
        print(f"mixguard: {_one_line(exc)}", file=sys.stderr)
        return 2


def _one_line(exc: Exception) -> str:
    import redis

    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return f"cannot reach Redis ({type(exc).__name__}): is the gateway's Redis running? (--redis-url, --config)"
    if isinstance(exc, redis.exceptions.RedisError):
        return f"Redis refused the command ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
