#!/usr/bin/env bash
# session 2026-12-06b, device call 1: build this tree and BASE (28b45ff: before the feeder threads and the
# model-kernel changes), CUDA tests of the model kernels and the step, Zoology bench + anchor, A/B, then the sweep
set -uo pipefail
t0=$(date +%s); o=/tmp/o; mkdir -p $o
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; el start
rm -rf /tmp/base && mkdir -p /tmp/base && tar xzf .devbin/base.tgz -C /tmp/base
(cd /tmp/base && BUILD_DIR=build-gpu JOBS=5 scripts/build.sh bla-train) > $o/build_base.log 2>&1 &
bp=$!
BUILD_DIR=build-gpu JOBS=11 scripts/build.sh bla-train bla-sweep bla_cuda_tests > $o/build.log 2>&1; rc=$?
el "build rc=$rc"
if [ $rc != 0 ]; then grep -E "error" -A5 $o/build.log | head -60; kill $bp; tar czf $OUT/all.tgz -C $o .; exit 1; fi
timeout 200 build-gpu/tests/bla_cuda_tests --gtest_filter='*ModelKernel*:*TrainStep*:*EnsembleOnGpu*' > $o/cuda_tests.log 2>&1; echo "cuda tests rc=$?"
grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure|Expected|Which is|rel err" $o/cuda_tests.log | grep -v "rel err" | head -30
cp $o/cuda_tests.log $OUT/
el tested
Z="configs/bench/mqar_zoology.yaml:--d,128,--layers,2,--heads,2,--vocab,8192,--seq,256,--batch,256,--steps,60,--warm,20"
PYTHONUNBUFFERED=1 timeout 120 python3 scripts/bench_train.py --build build-gpu --anchors .anchors --variants all --json $o/bench_zoology.json "$Z" > $o/bench_zoology.txt 2>&1; tail -6 $o/bench_zoology.txt; el benched
wait $bp; brc=$?; el "base build rc=$brc"
if [ $brc = 0 ]; then
  PYTHONUNBUFFERED=1 timeout 45 python3 scripts/bench_train.py --build /tmp/base/build-gpu --variants all --json $o/bench_zoology_base.json "$Z" > $o/bench_zoology_base.txt 2>&1; tail -3 $o/bench_zoology_base.txt
  PYTHONUNBUFFERED=1 timeout 45 python3 scripts/bench_train.py --build build-gpu --variants all --json $o/bench_zoology2.json "$Z" > $o/bench_zoology2.txt 2>&1; tail -3 $o/bench_zoology2.txt; el zoology-ab
  MEMBERS=4 STEPS=300 POINTS="swa64 bla32" BASE=/tmp/base OUT=$o/mqs scripts/gpu_mqar_step.sh 2>&1 | tail -7; el protocol-ab
fi
tar czf $OUT/all.tgz -C $o .
left=$(( 575 - ($(date +%s) - t0) ))
el "sweep for $left s"
if [ $left -gt 90 ]; then
  SWEEP=configs/sweeps/mqar.yaml ONLY=swa GPUS=0 LIMIT=$left OUT=$OUT/sw RESTORE=docs/data/mqar_protocol/full/call1_runs.tgz scripts/gpu_sweep.sh 2>&1 | tail -25
fi
el end
