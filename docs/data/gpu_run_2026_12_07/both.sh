#!/usr/bin/env bash
# Warm call: the MQAR sweep (sweep.sh) and the RegBench sweep (regbench.sh) side by side on one GPU.
#   LIMIT=540 bash .devbin/both.sh
set -uo pipefail
source scripts/gpu_build.sh
gpu_build /tmp/both_build bla-train bla-sweep || exit 1   # once, before the two sweeps share the folder
bash .devbin/regbench.sh > /tmp/rb_call.log 2>&1 &
rb=$!
bash .devbin/sweep.sh
wait $rb
cat /tmp/rb_call.log
