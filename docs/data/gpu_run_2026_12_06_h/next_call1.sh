#!/usr/bin/env bash
# Next session, device call 1 (fresh; carry [".anchors", ".devbin"]):  CALL_LIMIT=580 bash .devbin/next_call1.sh
# 1. Build this tree (build-gpu) and, beside it, the variants (build-var: BLA_MMA_PIPELINE, MmaProduct's pipelined,
#    paired-k operand loads; BLA_GLA_MMA, GLA/GSA's products on MmaProduct; kernels/dev/README.md); 2. ncu --set full of the BLA chunk kernels at the 125M shape
#    (what bounds them); 3. the 125M attention and BLA steps' kernel tables (train.profile_steps: #14's time);
#    4. the variants' BLA and GLA kernel tests, then bla-bench default / variant alternately (2 rounds: BLA at 3
#    shapes, GLA and GSA);
#    5. the MQAR BLA sweep for the rest of the call (ENSEMBLE default 4: compare its tokens/s with call14's
#    ensembles of 2 at 32 slots, 24.0M). Everything but the sweep goes back in n1.tgz (8 files a call).
# Then, warm: `ENSEMBLE=4 LIMIT=540 bash .devbin/sweep.sh` chained (the session's last with CHECKPOINTS=4).
set -uo pipefail
# The tree at the commit head_tree.tgz holds (src, tests, cmake): a helper edits the checkout meanwhile.
[ -f .devbin/head_tree.tgz ] && rm -rf src tests cmake && tar xzf .devbin/head_tree.tgz && echo "sources: .devbin/head_tree.tgz"
t0=$(date +%s)
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
end=$(( t0 + ${CALL_LIMIT:-580} - 25 ))
cap() { local l=$(( end - $(date +%s) )); [ $l -lt $1 ] && echo $(( l > 5 ? l : 0 )) || echo $1; }
within() { local t; t=$(cap $1); shift; [ "$t" -gt 0 ] && timeout "$t" "$@"; }
o=/tmp/n1; rm -rf $o; mkdir -p $o
pack() { tar czf $OUT/n1.tgz -C /tmp n1; }
(BUILD_DIR=build-var JOBS=6 CMAKE_ARGS=-DCMAKE_CUDA_FLAGS=-DBLA_MMA_PIPELINE,BLA_GLA_MMA scripts/build.sh bla-bench bla_cuda_tests \
  > $o/build_var.log 2>&1; echo "variant build rc=$?") &
export BUILD_DIR=build-gpu
within 360 bash -c "source scripts/gpu_build.sh; JOBS=10 gpu_build $o bla-train bla-data bla-sweep bla-bench" \
  || { el "build failed"; pack; exit 1; }
el built
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for k in bla_chunk_forward_kernel bla_chunk_backward_scores_kernel; do
  [ -n "$ncu" ] || break
  within 60 "$ncu" --set full -k "regex:$k" --launch-count 1 --csv --page details \
    build-gpu/src/bla-bench --op bla --window 512 --slots 64 --batch 8 --seq 2048 --heads 12 --pass fwdbwd \
    --warmup 0 --reps 1 --sets 1 --no-ceilings --no-reference > $o/ncu_full_$k.csv 2> $o/ncu_full_$k.err
  echo "ncu $k rc=$?"
done
el ncu
data=data.path=$PWD/build-gpu/data/bench_text
OUT=$o SKIP_BUILD=1 STEPS=25 RUN_TIMEOUT=$(cap 90) within 100 scripts/gpu_profile_step.sh \
  att125m=configs/bench/lm_125m.yaml,$data \
  bla125m=configs/bench/lm_125m.yaml,$data,model.mixer=bla,model.mixers.bla.window=512,model.mixers.bla.slots=64 \
  > $o/profile.out 2>&1
echo "profile rc=$?"; el profile
while [ -n "$(jobs -r)" ] && [ $(cap 999) -gt 200 ]; do sleep 2; done
el "variant build done (or gave up waiting)"
if [ -x build-var/tests/bla_cuda_tests ]; then
  within 120 build-var/tests/bla_cuda_tests --gtest_filter='*BlaKernel*:*GlaKernel*' > $o/cuda_tests_var.log 2>&1
  echo "variant cuda tests rc=$?"; grep -E "^\[  (PASSED|FAILED) |FAILED  \]" $o/cuda_tests_var.log | head -8
  for b in build-gpu build-var build-gpu build-var; do
    for shape in "" "--batch 8 --seq 2048 --heads 12" "--batch 1024 --seq 256 --heads 2 --window 256 --slots 32"; do
      echo "== $b $shape" >> $o/bench_var.txt
      within 40 $b/src/bla-bench --op bla --window 512 --slots 64 $shape --warmup 5 --reps 20 --sets 3 \
        --no-ceilings --no-reference >> $o/bench_var.txt 2>&1
    done
    for op in gla gsa; do
      echo "== $b $op" >> $o/bench_var.txt
      within 40 $b/src/bla-bench --op $op --slots 64 --warmup 3 --reps 10 --sets 2 --no-ceilings --no-reference \
        >> $o/bench_var.txt 2>&1
    done
  done
  grep -E "^==|kernel" $o/bench_var.txt | head -40
fi
el bench
pack
l=$(cap 600); [ "$l" -gt 120 ] && ENSEMBLE=${ENSEMBLE:-4} LIMIT=$(( l - 40 )) bash .devbin/sweep.sh
el end
