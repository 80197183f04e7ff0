#!/usr/bin/env bash
# Continue the BLA sweep in ensembles (a warm machine keeps its folder; a fresh one restores the last
# runs.tgz and the checkpoints that came back, copied here into .devbin/ckpt/).
#   LIMIT=540 bash .devbin/sweep.sh
set -uo pipefail
r=""
if [ ! -d build-gpu/sweeps/mqar ]; then
  r=${RESTORE:-docs/data/mqar_protocol/full/call34_runs.tgz}
  for f in .devbin/ckpt/ckpt_*.tgz; do [ -f "$f" ] && r="$r $f"; done
fi
echo "restore: ${r:-none (warm)}"
SWEEP=configs/sweeps/mqar.yaml ONLY=${ONLY:-bla,bla_window,bla_window_2x,swa_rope,gla,gsa,mamba2} GPUS=${GPUS:-0} ENSEMBLE=${ENSEMBLE:-2} CHECKPOINTS=${CHECKPOINTS:-2} \
  LIMIT=${LIMIT:-540} FINISH_BY=${FINISH_BY:-} OUT=$OUT/sw RESTORE="$r" scripts/gpu_sweep.sh 2>&1 | tail -30
# More than 2 checkpoints back: the build log makes room (a call returns at most 8 files).
[ "${CHECKPOINTS:-2}" -gt 2 ] && rm -f $OUT/sw/build.log
ls $OUT/sw $OUT/sw/* | head -20
