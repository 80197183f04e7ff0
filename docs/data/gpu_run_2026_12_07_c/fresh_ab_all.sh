#!/usr/bin/env bash
# Fresh call (carry [".devbin"]): the BLA kernels' variant A/B from the prebuilt harnesses (.devbin/bla_dev.txz,
# scripts/build_dev_harnesses.sh) while bla-train, bla-sweep and bla_cuda_tests build; then the captured step's
# CUDA tests, then the MQAR BLA sweep beside the RegBench attention point for the rest of the call.
#   CALL_LIMIT=480 bash .devbin/fresh_ab_all.sh
set -uo pipefail
t0=$(date +%s)
mkdir -p /tmp/bla_dev && tar xJf .devbin/bla_dev.txz -C /tmp/bla_dev
source scripts/gpu_build.sh
( gpu_build /tmp/both_build bla-train bla-sweep bla_cuda_tests > /tmp/build_status.txt 2>&1; echo "rc=$?" >> /tmp/build_status.txt ) &
build=$!
DEV_BIN=/tmp/bla_dev ROUNDS=2 timeout 200 bash scripts/gpu_bla_dev_ab.sh > /tmp/bla_ab.txt 2>&1
echo "bla A/B rc=$? after $(( $(date +%s) - t0 )) s"
cp /tmp/bla_ab.txt $OUT/bla_ab.txt
grep -E "^(==|  |out|grad|B[0-9])" /tmp/bla_ab.txt | head -120
wait $build
cat /tmp/build_status.txt
grep -q "rc=0" /tmp/build_status.txt || { tail -40 /tmp/both_build/build.log; exit 1; }
echo "built after $(( $(date +%s) - t0 )) s"
timeout 120 build-gpu/tests/bla_cuda_tests --gtest_filter='TrainStepGraph*' > /tmp/cuda_tests.log 2>&1
echo "cuda tests rc=$?"; grep -E "^\[  (PASSED|FAILED) |FAILED  \]" /tmp/cuda_tests.log | head
rest=$(( ${CALL_LIMIT:-480} - ($(date +%s) - t0) - 25 ))
echo "sweeps get $rest s"
[ "$rest" -lt 60 ] && exit 0
LIMIT=$rest FINISH_BY=$(( rest - 20 )) bash .devbin/regbench.sh > /tmp/rb_call.log 2>&1 &
rb=$!
GPUS=0,0 ENSEMBLE=4 CHECKPOINTS=4 LIMIT=$rest FINISH_BY=$(( rest - 20 )) bash .devbin/sweep.sh
wait $rb
cat /tmp/rb_call.log
rm -f $OUT/sw/mqar/tables.md   # regenerated here from results.csv; a call returns 8 files
(cd $OUT && [ -f rb.tgz ] && tar cf rb_ab.tar rb.tgz bla_ab.txt && rm rb.tgz bla_ab.txt)
find $OUT -type f | sort
