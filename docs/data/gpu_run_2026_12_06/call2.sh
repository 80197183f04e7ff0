#!/usr/bin/env bash
# device call 2: MQAR protocol, SWA headline points (stage 1 trials first)
set -uo pipefail
o=/tmp/o2; mkdir -p $o
git log --oneline -1 2>/dev/null
nvidia-smi --query-gpu=name --format=csv,noheader
SWEEP=configs/sweeps/mqar.yaml ONLY=${ONLY:-swa} GPUS=${GPUS:-0,0} LIMIT=${LIMIT:-500} OUT=$o ${RESTORE:+RESTORE="$RESTORE"} scripts/gpu_sweep.sh
cp $o/build.log $OUT/ 2>/dev/null; cp $o/sweep.log $OUT/; cp -r $o/mqar $OUT/ 2>/dev/null
ls -la $OUT $OUT/mqar
