#!/usr/bin/env bash
# device call 1: build, CUDA tests, BLA 32-slot A/B, protocol ensemble step, profiles, zoology bench
set -uo pipefail
t0=$(date +%s); o=/tmp/o; mkdir -p $o
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
late() { [ $(( $(date +%s) - t0 )) -gt "$1" ]; }
git log --oneline -1 2>/dev/null; el start
source scripts/gpu_build.sh
gpu_build $o bla-train bla-data bla_cuda_tests bla-bench || { tar czf $OUT/all.tgz -C $o .; exit 1; }
el built
timeout 150 $BUILD_DIR/tests/bla_cuda_tests --gtest_filter='*TrainStep*:*ModelKernel*:*ProjectStacked*:*BlaKernel*' > $o/tests.log 2>&1; echo "cuda tests rc=$?"
grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure" $o/tests.log | head -30
el tested
for n in 32 33 64 16; do timeout 40 $BUILD_DIR/src/bla-bench --op bla --batch 256 --seq 256 --heads 2 --dim 64 --window 256 --slots $n --no-reference --no-ceilings; done > $o/bla_bench_slots.txt 2>&1; grep -E "slots|ms" $o/bla_bench_slots.txt | head -24
el op-benched
late 330 || { MEMBERS=4 STEPS=200 POINTS="bla32 bla33 swa64" OUT=$o/mqs scripts/gpu_mqar_step.sh 2>&1 | tail -6; el ensemble-step; }
late 400 || { SKIP_BUILD=1 SHOW=40 STEPS=25 RUN_TIMEOUT=60 OUT=$o/prof scripts/gpu_profile_step.sh proto_bla=configs/bench/mqar_protocol.yaml zoology=configs/bench/mqar_zoology.yaml proto_swa=configs/bench/mqar_protocol.yaml,model.mixer=swa lm_bla=configs/bench/lm_125m.yaml,model.mixer=bla,model.mixers.bla.window=512,model.mixers.bla.slots=64 > $o/prof.txt 2>&1; echo "profile rc=$?"; el profiled; }
late 470 || { PYTHONUNBUFFERED=1 timeout 100 python3 scripts/bench_train.py --build build-gpu --anchors .anchors --variants all --json $o/bench_zoology.json "configs/bench/mqar_zoology.yaml:--d,128,--layers,2,--heads,2,--vocab,8192,--seq,256,--batch,256,--steps,60,--warm,20" > $o/bench_zoology.txt 2>&1; tail -6 $o/bench_zoology.txt; el benched; }
tar czf $OUT/all.tgz -C $o .
