#!/usr/bin/env bash
# Warm call after next_call1.sh (build-gpu has bla_cuda_tests): the captured step's CUDA tests (RegBench's among
# them), then the MQAR sweep (sweep.sh) and the RegBench sweep (regbench.sh) side by side on one GPU.
#   LIMIT=500 FINISH_BY=440 bash .devbin/both.sh
set -uo pipefail
source scripts/gpu_build.sh
gpu_build /tmp/both_build bla-train bla-sweep || exit 1   # once, before the two sweeps share the folder
if [ -x build-gpu/tests/bla_cuda_tests ]; then
  timeout 150 build-gpu/tests/bla_cuda_tests --gtest_filter='TrainStepGraph*' > /tmp/cuda_tests.log 2>&1
  echo "cuda tests rc=$?"; grep -E "^\[  (PASSED|FAILED) |FAILED  \]" /tmp/cuda_tests.log | head
fi
bash .devbin/regbench.sh > /tmp/rb_call.log 2>&1 &
rb=$!
bash .devbin/sweep.sh
wait $rb
cat /tmp/rb_call.log
