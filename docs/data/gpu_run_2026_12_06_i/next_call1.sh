#!/usr/bin/env bash
# Session 2026-12-06 (2), device call 1 (fresh; carry [".anchors", ".devbin"]):  CALL_LIMIT=580 bash .devbin/next_call1.sh
# 1. Build this tree (build-gpu) and, beside it, the bank-conflict variants together (build-var:
#    BLA_MMA_STORE_ORDER, BLA_MMA_PAIRED_K, BLA_VALUE_STRIDE8; kernels/dev/README.md);
# 2. the variant build's BLA kernel tests (first GPU run of the three);
# 3. bla-bench default / variant alternately (2 rounds, BLA at 3 shapes);
# 4. ncu --set full of the three BLA chunk kernels, default and variant, at the 125M shape;
# 5. the MQAR BLA sweep for the rest of the call. Everything but the sweep goes back in n1.tgz.
set -uo pipefail
t0=$(date +%s)
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
end=$(( t0 + ${CALL_LIMIT:-580} - 25 ))
cap() { local l=$(( end - $(date +%s) )); [ $l -lt $1 ] && echo $(( l > 5 ? l : 0 )) || echo $1; }
within() { local t; t=$(cap $1); shift; [ "$t" -gt 0 ] && timeout "$t" "$@"; }
o=/tmp/n1; rm -rf $o; mkdir -p $o
pack() { tar czf $OUT/n1.tgz -C /tmp n1; }
nvidia-smi --query-gpu=name,driver_version --format=csv > $o/gpu.txt 2>&1
(BUILD_DIR=build-var JOBS=6 CMAKE_ARGS=-DCMAKE_CUDA_FLAGS=-DBLA_MMA_STORE_ORDER,BLA_MMA_PAIRED_K,BLA_VALUE_STRIDE8 \
  scripts/build.sh bla-bench bla_cuda_tests > $o/build_var.log 2>&1; echo "variant build rc=$?") &
export BUILD_DIR=build-gpu
within 360 bash -c "source scripts/gpu_build.sh; JOBS=10 gpu_build $o bla-train bla-data bla-sweep bla-bench" \
  || { el "build failed"; pack; exit 1; }
el built
while [ -n "$(jobs -r)" ] && [ $(cap 999) -gt 250 ]; do sleep 2; done
el "variant build done (or gave up waiting)"
if [ -x build-var/tests/bla_cuda_tests ]; then
  within 120 build-var/tests/bla_cuda_tests --gtest_filter='*BlaKernel*' > $o/cuda_tests_var.log 2>&1
  echo "variant cuda tests rc=$?"; grep -E "^\[  (PASSED|FAILED) |FAILED  \]" $o/cuda_tests_var.log | head -8
  for b in build-gpu build-var build-gpu build-var; do
    for shape in "" "--batch 8 --seq 2048 --heads 12" "--batch 1024 --seq 256 --heads 2 --window 256 --slots 32"; do
      echo "== $b $shape" >> $o/bench_var.txt
      within 40 $b/src/bla-bench --op bla --window 512 --slots 64 $shape --warmup 5 --reps 20 --sets 3 \
        --no-ceilings --no-reference >> $o/bench_var.txt 2>&1
    done
  done
  grep -E "^==|kernel" $o/bench_var.txt | head -40
  el bench
  ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  for b in build-gpu build-var; do
    [ -n "$ncu" ] || break
    within 150 "$ncu" --set full -k "regex:bla_chunk_(forward|backward_scores|backward_inputs)_kernel" --launch-count 3 \
      --csv --page details $b/src/bla-bench --op bla --window 512 --slots 64 --batch 8 --seq 2048 --heads 12 \
      --pass fwdbwd --warmup 0 --reps 1 --sets 1 --no-ceilings --no-reference > $o/ncu_full_$b.csv 2> $o/ncu_full_$b.err
    echo "ncu $b rc=$?"
  done
  el ncu
fi
pack
l=$(cap 600); [ "$l" -gt 120 ] && GPUS=${GPUS:-0,0} ENSEMBLE=${ENSEMBLE:-4} LIMIT=$(( l - 40 )) bash .devbin/sweep.sh
el end
