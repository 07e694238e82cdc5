#!/usr/bin/env bash
# GPU host, from the repository root: installs one chunk of bench/gpu/stage/ (bench/gpu/prepare.sh) that this
# device call carried: SGLang's wheels into /tmp/site, the gateway's into /tmp/site2, the trimmed kernel, the
# model folder into /tmp/stage/model. One call per chunk, back to back, so the machine stays warm between them.
# Usage: bash bench/gpu/stage.sh bench/gpu/stage/cN
set -u
CHUNK=${1:?bench/gpu/stage/cN}
PY=${PY:-python3}
SITE=/tmp/site SITE2=/tmp/site2 STAGE=/tmp/stage
mkdir -p $SITE $SITE2 $STAGE/model
name=$(basename "$CHUNK")
[ -f $STAGE/.done-"$name" ] && { echo "$name already installed"; exit 0; }
t=$(date +%s)
pipi() { $PY -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$@" 2>&1 | grep -v "^WARNING: Target directory" | tail -3; }
compgen -G "$CHUNK/sg/*.whl" >/dev/null && pipi $SITE "$CHUNK"/sg/*.whl
compgen -G "$CHUNK/gw/*.whl" >/dev/null && pipi $SITE2 "$CHUNK"/gw/*.whl
[ -f "$CHUNK/kernel/sglkernel_trim.tgz" ] && tar xzf "$CHUNK/kernel/sglkernel_trim.tgz" -C $SITE
[ -d "$CHUNK/model" ] && cp -r "$CHUNK"/model/. $STAGE/model/
touch $STAGE/.done-"$name"
echo "$name installed in $(( $(date +%s) - t ))s: $(ls $STAGE | tr '\n' ' ')"
