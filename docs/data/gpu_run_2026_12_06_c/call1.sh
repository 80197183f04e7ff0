#!/usr/bin/env bash
# session 2026-12-06c, device call 1: build; CUDA tests of the model kernels and GLA/GSA; the GLA output kernel
# before/after a9fced6 (dev harnesses); bla-bench gla/gsa; then the SWA sweep with what is left
set -uo pipefail
t0=$(date +%s); o=/tmp/o; mkdir -p $o
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; git log --oneline -1 2>/dev/null; el start
BUILD_DIR=build-gpu JOBS=16 scripts/build.sh bla-train bla-sweep bla_cuda_tests bla-bench > $o/build.log 2>&1; rc=$?
el "build rc=$rc"
if [ $rc != 0 ]; then grep -E "error" -A5 $o/build.log | head -60; tar czf $OUT/all.tgz -C $o .; exit 1; fi
timeout 150 build-gpu/tests/bla_cuda_tests --gtest_filter='*ModelKernel*:*Gla*:*Gsa*:*GLA*:*GSA*' > $o/cuda_tests.log 2>&1; echo "cuda tests rc=$?"
grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure|Expected|Which is" $o/cuda_tests.log | head -30
el tested
for v in gla_forward_dev_before gla_forward_dev; do
  echo "== $v"; timeout 60 .devbin/$v > $o/$v.txt 2>&1; echo "rc=$?"; grep -vE "^\s*$" $o/$v.txt | tail -14
done
el dev
for run in "gla" "gsa --slots 64"; do
  timeout 60 build-gpu/src/bla-bench --op $run --batch 4 --seq 8192 --heads 16 --dim 64 --dtype bf16 --reps 20 --sets 2 --warmup 5 --json --no-reference --no-ceilings >> $o/bench_ops.jsonl 2>>$o/bench_ops.err; echo "bench $run rc=$?"
done
tail -4 $o/bench_ops.jsonl; tail -3 $o/bench_ops.err
el benched
tar czf $OUT/all.tgz -C $o .
left=$(( ${LIMIT_ALL:-580} - ($(date +%s) - t0) ))
el "sweep for $left s"
if [ $left -gt 90 ]; then
  SWEEP=configs/sweeps/mqar.yaml ONLY=swa GPUS=0 LIMIT=$left OUT=$OUT/sw RESTORE=docs/data/mqar_protocol/full/call3_runs.tgz scripts/gpu_sweep.sh 2>&1 | tail -25
fi
el end
