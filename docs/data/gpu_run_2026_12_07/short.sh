#!/usr/bin/env bash
# A short fresh call: build, then the MQAR BLA sweep (16 and 11 slots side by side) for what is left of CALL_LIMIT,
# 11 slots' checkpoints back.   CALL_LIMIT=300 bash .devbin/short.sh
set -uo pipefail
t0=$(date +%s)
source scripts/gpu_build.sh
gpu_build /tmp/short_build bla-train bla-sweep || { tail -30 /tmp/short_build/build.log; exit 1; }
left=$(( ${CALL_LIMIT:-300} - ($(date +%s) - t0) - 45 ))
echo "build done at t+$(( $(date +%s) - t0 ))s; sweep LIMIT=$left"
[ "$left" -gt 30 ] || exit 0
GPUS=0,0 ENSEMBLE=4 CHECKPOINTS=4 LIMIT=$left bash .devbin/sweep.sh
