#!/usr/bin/env bash
# Device call 1 (fresh; carry [".anchors", ".devbin"]):  CALL_LIMIT=560 bash .devbin/call1.sh
# Builds: this tree (build-gpu), 517177a (/tmp/base: carry one chunk a step, Mamba2 conv in LibTorch), and this
# tree with BLA_MMA_PRODUCT (build-mma: the BLA kernels' products on mma.sync instead of WMMA).
# 1. CUDA tests of what has not run on a GPU (57d2166 Mamba2 conv kernel; d457ee2 SWA DEV_ macros; 21b0692 carry
#    two chunks a step), and the BLA kernel tests of the mma build;
# 2. bla-bench BLA: base / this / mma alternately, two shapes; per-kernel times (ncu);
# 3. the 125M Mamba2-like tokens/s, base and this; 4. the BLA sweep until ~CALL_LIMIT.
set -uo pipefail
t0=$(date +%s)
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
end=$(( t0 + ${CALL_LIMIT:-560} - 25 ))  # everything stops by then; the archive is made after
# At most $1 seconds, and never past the end (0: skip).
cap() { local l=$(( end - $(date +%s) )); [ $l -lt $1 ] && echo $(( l > 5 ? l : 0 )) || echo $1; }
within() { local t; t=$(cap $1); shift; [ "$t" -gt 0 ] && timeout "$t" "$@"; }
test_rc=1
o=$OUT/c1; mkdir -p $o
rm -rf /tmp/base && mkdir -p /tmp/base && tar xzf .devbin/base_pre_mamba2conv.tgz -C /tmp/base
(cd /tmp/base && BUILD_DIR=build-gpu JOBS=4 scripts/build.sh bla-train bla-bench > $o/build_base.log 2>&1; echo "base build rc=$?") &
(BUILD_DIR=build-mma JOBS=4 CMAKE_ARGS=-DCMAKE_CUDA_FLAGS=-DBLA_MMA_PRODUCT scripts/build.sh bla_cuda_tests bla-bench \
  > $o/build_mma.log 2>&1; echo "mma build rc=$?") &
within 360 bash -c "source scripts/gpu_build.sh; JOBS=8 gpu_build $o bla-train bla-data bla-sweep bla_cuda_tests bla-bench" \
  || { el "build failed or ran out of time"; (cd "$OUT" && tar czf c1.tgz c1 && rm -rf c1); exit 1; }
el "built this"
within 200 build-gpu/tests/bla_cuda_tests \
  --gtest_filter='*ShortConv*:*EnsembleOnGpu*:*TrainStepGraph*:*Mamba2*:*SwaKernel*:*GatedFwa*:*Gatedfwa*:*BlaKernel*' > $o/tests.log 2>&1
test_rc=$?; echo "cuda tests rc=$test_rc"; grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure" $o/tests.log | head -20
el tests
while [ -n "$(jobs -r)" ] && [ $(cap 999) -gt 120 ]; do sleep 2; done
el "built base and mma (or gave up waiting)"
within 100 build-mma/tests/bla_cuda_tests --gtest_filter='*BlaKernel*' > $o/tests_mma.log 2>&1
echo "mma cuda tests rc=$?"; grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure" $o/tests_mma.log | head -10
for b in /tmp/base/build-gpu build-gpu build-mma /tmp/base/build-gpu build-gpu build-mma; do
  for shape in "" "--batch 8 --seq 2048 --heads 12"; do
    echo "== $b $shape" >> $o/bla_bench.txt
    [ -x $b/src/bla-bench ] || continue
    within 60 $b/src/bla-bench --op bla --window 512 --slots 64 $shape --warmup 5 --reps 20 --sets 3 \
      --no-ceilings --no-reference >> $o/bla_bench.txt 2>&1
  done
done
grep -E "^==|kernel" $o/bla_bench.txt | head -40
el bla
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for b in /tmp/base/build-gpu build-gpu build-mma; do
  [ -n "$ncu" ] || break
  n=$(echo $b | tr '/' '_')
  [ -x $b/src/bla-bench ] || continue
  within 60 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --log-file "$o/ncu_bla$n.csv" \
    $b/src/bla-bench --op bla --window 512 --slots 64 --pass fwdbwd --warmup 1 --reps 1 --sets 1 --no-ceilings \
    --no-reference > /dev/null 2>&1
  echo "ncu $b rc=$?"; python3 scripts/ncu_kernel_times.py "$o/ncu_bla$n.csv" --per 2 | head -12
done
el ncu
if [ $(( $(date +%s) - t0 )) -lt 380 ]; then
  source scripts/bench_corpus.sh; bench_corpus "$o"
  data=data.path=$PWD/build-gpu/data/bench_text
  for b in /tmp/base/build-gpu build-gpu; do
    PYTHONUNBUFFERED=1 within 80 python3 scripts/bench_train.py --build $b --variants all \
      "configs/bench/lm_125m.yaml:none:$data,model.mixer=mamba2" >> $o/mamba2_125m.txt 2>&1
    echo "$b: $(grep -E '^all' $o/mamba2_125m.txt | tail -1)"
  done
  el mamba2
fi
(cd "$OUT" && tar czf c1.tgz c1 && rm -rf c1)
left=$(( end - $(date +%s) - 50 ))
el "sweep for ${left}s"
[ $left -gt 60 ] && [ $test_rc -eq 0 ] && LIMIT=$left GPUS=0,0 bash .devbin/sweep.sh
el end
