#!/usr/bin/env bash
# The RegBench protocol's first point (attention, the ceiling), beside the MQAR sweep on the same GPU
# (RegBench's tiny model leaves it mostly idle). Everything comes back in $OUT/rb.tgz.
#   LIMIT=540 bash .devbin/regbench.sh
set -uo pipefail
rb=/tmp/rb
r=""
if [ ! -d build-gpu/sweeps/regbench ]; then
  for f in ${RB_RESTORE:-docs/data/regbench_protocol/call10_runs.tgz}; do [ -f "$f" ] && r="$r $f"; done
  rm -rf $rb
fi
mkdir -p $rb
SWEEP=configs/sweeps/regbench.yaml ONLY=${RB_ONLY:-attention,attention_4_layers,attention_8_layers} GPUS=0 ENSEMBLE=${RB_ENSEMBLE:-4} CHECKPOINTS=${RB_CHECKPOINTS:-4} \
  LIMIT=${LIMIT:-540} FINISH_BY=${FINISH_BY:-} OUT=$rb RESTORE="$r" scripts/gpu_sweep.sh > $rb/gpu_sweep.out 2>&1
cp /tmp/cuda_tests.log $rb/ 2>/dev/null
tar czf $OUT/rb.tgz -C /tmp rb
tail -25 $rb/gpu_sweep.out
