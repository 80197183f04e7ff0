#!/usr/bin/env bash
# Fresh call (carry [".devbin"]): build bla-train, bla-sweep and bla_cuda_tests, run the BLA kernels' and the
# captured step's CUDA tests (the v7 kernels have not run the library's tests on a GPU), then the MQAR BLA sweep
# beside the RegBench attention point's seeds 2 and 3 for the rest of the call.
#   CALL_LIMIT=560 bash .devbin/fresh_all.sh
set -uo pipefail
t0=$(date +%s)
source scripts/gpu_build.sh
gpu_build /tmp/both_build bla-train bla-sweep bla_cuda_tests || { tail -40 /tmp/both_build/build.log; exit 1; }
timeout 200 build-gpu/tests/bla_cuda_tests --gtest_filter='*BlaKernel*:*TrainStepGraph*' > /tmp/cuda_tests.log 2>&1
echo "cuda tests rc=$?"; grep -E "^\[  (PASSED|FAILED) |FAILED  \]" /tmp/cuda_tests.log | head
rest=$(( ${CALL_LIMIT:-560} - ($(date +%s) - t0) - 25 ))
echo "sweeps get $rest s"
[ "$rest" -lt 60 ] && exit 0
LIMIT=$rest FINISH_BY=$(( rest - 20 )) bash .devbin/regbench.sh > /tmp/rb_call.log 2>&1 &
rb=$!
GPUS=0,0 ENSEMBLE=4 CHECKPOINTS=4 LIMIT=$rest FINISH_BY=$(( rest - 20 )) bash .devbin/sweep.sh
wait $rb
cat /tmp/rb_call.log
rm -f $OUT/sw/mqar/tables.md   # regenerated here from results.csv; a call returns 8 files
find $OUT -type f | sort
