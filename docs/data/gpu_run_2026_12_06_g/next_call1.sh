#!/usr/bin/env bash
# Next session, device call 1 (fresh; carry [".anchors", ".devbin"]):  CALL_LIMIT=560 bash .devbin/next_call1.sh
# The 125M tokens/s of every mixer with the v6 BLA kernels (mma.sync products, two-chunk carry; 6724367), attention
# and BLA first (#14's BLA ratio), each config its own bench_train run within the call's time; then, warm,
# `LIMIT=530 bash .devbin/sweep.sh` (chained; the last call of the session with CHECKPOINTS=4).
set -uo pipefail
t0=$(date +%s)
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
end=$(( t0 + ${CALL_LIMIT:-580} - 25 ))
cap() { local l=$(( end - $(date +%s) )); [ $l -lt $1 ] && echo $(( l > 5 ? l : 0 )) || echo $1; }
within() { local t; t=$(cap $1); shift; [ "$t" -gt 0 ] && timeout "$t" "$@"; }
o=$OUT/n1; mkdir -p $o
export BUILD_DIR=build-gpu
within 400 bash -c "source scripts/gpu_build.sh; gpu_build $o bla-train bla-data bla-sweep bla_cuda_tests bla-bench" || { el "build failed"; exit 1; }
el built
within 150 build-gpu/tests/bla_cuda_tests --gtest_filter='*BlaKernel*:*GlaKernel*' > $o/cuda_tests.log 2>&1
echo "cuda tests rc=$?"; grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure" $o/cuda_tests.log | head -20
el tests
source scripts/bench_corpus.sh; bench_corpus "$o"
lm=configs/bench/lm_125m.yaml; data=data.path=$PWD/build-gpu/data/bench_text
for c in "" ",model.mixer=bla,model.mixers.bla.window=512,model.mixers.bla.slots=64" \
         ",model.mixer=swa,model.mixers.swa.window=512" ",model.mixer=mamba2" \
         ",model.mixer=gatedfwa,model.mixers.gatedfwa.window=512" ",model.mixer=gla" ",model.mixer=gsa"; do
  PYTHONUNBUFFERED=1 within 90 python3 scripts/bench_train.py --build build-gpu --variants all \
    "$lm:none:$data$c" >> $o/bench_125m.txt 2>&1
  echo "${c:-attention}: $(grep -E '^all' $o/bench_125m.txt | tail -1)"
done
el end
