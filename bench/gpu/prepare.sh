#!/usr/bin/env bash
# Prepares, on the CPU machine, everything the GPU run of bench/prefix_cache.py needs on a lent GPU machine
# that has Python 3.12 and torch 2.11 (cu130) but no network: SGLang 0.5.17 and its missing imports, a
# trimmed sglang-kernel, the gateway's own wheels, and a Mixtral-architecture model folder (config and
# Mixtral's tokenizer; the weights are SGLang's `--load-format dummy`). Everything goes to bench/gpu/stage/
# (ignored by git), packed into chunks c1, c2, ... of at most CHUNK_MIB each, because one device call may
# carry 64 MiB. Each chunk holds sg/ (SGLang's wheels), gw/ (the gateway's), and maybe kernel/ and model/.
# Usage: bash bench/gpu/prepare.sh            (about 400 MiB of downloads)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STAGE=$HERE/stage
CHUNK_MIB=${CHUNK_MIB:-56}
PY=${PYTHON:-python3}
# Downloads are kept in $STAGE/dl (SGLang's part is fetched once; the gateway's again on every run, since its
# dependencies change); the chunks c1, c2, ... are rebuilt from it as hard links.
DL=$STAGE/dl
rm -rf "$STAGE"/c* "$DL/gw" "$DL/model" && mkdir -p "$DL"/sg "$DL"/gw "$DL"/kernel "$DL"/model

# pip download for the GPU host's interpreter (CPython 3.12, x86-64 manylinux).
dl() {
  local dest=$1; shift
  "$PY" -m pip download -q --disable-pip-version-check --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d "$dest" "$@"
}

# SGLang 0.5.17 and what it imports at start that the image lacks (pinned where a newer release breaks it):
# the image's transformers 5.17 registers qwen3_asr twice with sglang 0.5.17, hence transformers 5.12.1.
[ -f "$DL/sg/.done" ] || dl "$DL/sg" --no-deps sglang==0.5.17 xgrammar==0.2.1 ipython decorator matplotlib-inline pexpect \
  prompt-toolkit stack-data traitlets executing asttokens pure-eval wcwidth ptyprocess ipython-pygments-lexers \
  orjson pybase64 starlette fastapi uvicorn pyzmq msgspec setproctitle python-multipart interegular llguidance \
  partial-json-parser compressed-tensors torchao==0.17.0 openai==2.6.1 openai-harmony==0.0.4 gguf blobfile==3.0.0 \
  pydantic pydantic-core annotated-types typing-inspection distro jiter sniffio httptools websockets watchfiles \
  easydict apache-tvm-ffi==0.1.11 cuda-python pycryptodomex jedi parso \
  transformers==5.12.1 tokenizers==0.22.2 dill loguru opentelemetry-api zstandard anthropic torch-memory-saver \
  outlines==0.1.11 outlines-core lark diskcache jsonschema referencing rpds-py jsonschema-specifications pycountry \
  airportsdata nest-asyncio docstring-parser importlib-metadata \
  flashinfer-python==0.6.15.post1 cuda-tile nvidia-cudnn-frontend nccl4py cffi pycparser soundfile
touch "$DL/sg/.done"

# sglang-kernel without the 1.1 GB FlashAttention-3 library and the Blackwell kernels (triton attention is used).
if [ ! -f "$DL/kernel/sglkernel_trim.tgz" ]; then
  tmp=$(mktemp -d)
  dl "$tmp" --no-deps sglang-kernel==0.4.5
  (cd "$tmp" && mkdir k && cd k && unzip -q ../sglang_kernel-*.whl -x 'sgl_kernel/flash_ops.abi3.so' 'sgl_kernel/sm100/*' \
    'sgl_kernel/infllm_ops*' 'sgl_kernel/flashmla_ops*' && tar czf "$DL/kernel/sglkernel_trim.tgz" .)
  rm -rf "$tmp"
fi

# The gateway's runtime dependencies, read from pyproject.toml, at the versions of constraints.txt, with their
# own dependencies; what the GPU image already has (numpy, aiohttp, pyyaml, ...) is left out. litellm is
# imported only for hosted deployments, which this run has none of.
mapfile -t GW_DEPS < <("$PY" -c "import sys, tomllib; [print(d) for d in tomllib.load(open(sys.argv[1], 'rb'))['project']['dependencies'] if not d.startswith('litellm')]" "$ROOT/pyproject.toml")
dl "$DL/gw" -c "$ROOT/constraints.txt" "${GW_DEPS[@]}"
IMAGE_HAS="numpy aiohttp aiosignal frozenlist multidict yarl propcache aiohappyeyeballs attrs anyio httpx httpcore h11
idna certifi pyyaml prometheus_client safetensors tqdm uvloop regex requests urllib3 charset_normalizer click rich
typer shellingham markdown_it_py mdurl pygments typing_extensions packaging filelock fsspec huggingface_hub hf_xet
jinja2 markupsafe setuptools six python_dateutil"
for name in $IMAGE_HAS; do find "$DL/gw" -iname "$name-[0-9]*.whl" -delete; done

# The model folder: Mixtral 8x7B layer sizes, 8 layers (22 GB of dummy bf16 weights), Mixtral's own tokenizer.
cp "$HERE/mixtral-8l-config.json" "$DL/model/config.json"
"$PY" "$HERE/make_tokenizer.py" "$DL/model"

# Pack into chunks of at most CHUNK_MIB (largest files first, first chunk with room), as hard links.
"$PY" - "$STAGE" "$CHUNK_MIB" <<'PYEOF'
import os, sys
stage, limit = sys.argv[1], int(sys.argv[2]) * 2**20
files = []
for sub in ("sg", "gw", "kernel", "model"):
    for name in os.listdir(os.path.join(stage, "dl", sub)):
        path = os.path.join(stage, "dl", sub, name)
        if name.startswith("."):
            continue
        files.append((os.path.getsize(path), sub, name))
files.sort(reverse=True)
chunks = []
for size, sub, name in files:
    if size > limit:
        sys.exit(f"{sub}/{name} is {size >> 20} MiB, more than one chunk")
    for c in chunks:
        if c[0] + size <= limit:
            c[0] += size; c[1].append((size, sub, name)); break
    else:
        chunks.append([size, [(size, sub, name)]])
for i, (_, items) in enumerate(chunks, 1):
    for _, sub, name in items:
        os.makedirs(os.path.join(stage, f"c{i}", sub), exist_ok=True)
        os.link(os.path.join(stage, "dl", sub, name), os.path.join(stage, f"c{i}", sub, name))
print(f"{len(chunks)} chunks")
PYEOF
du -shL "$STAGE"/c*
