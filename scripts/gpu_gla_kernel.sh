#!/usr/bin/env bash
# On a CUDA machine: the gated recurrence's kernels (GLA and GSA,
# bla_kernels/gla.h) checked and timed in one call: the development harness
# (kernels/dev/gla_forward_dev.cu: the kernels against the token loop in
# float64, then forward timings), the CUDA tests of the op (GlaKernel*) and of
# the captured training step with GLA and GSA, bla-bench --op gla and gsa
# with the kernels and with BLA_KERNELS=0 (the LibTorch form), and the 125M
# model's tokens/s with GLA and with GSA in every layer, both ways. Logs go to
# ${OUT:-gpu-gla}/.
#   scripts/gpu_gla_kernel.sh
#   SKIP_125M=1 scripts/gpu_gla_kernel.sh   # leave out the 125M runs
#   SANITIZE=1 scripts/gpu_gla_kernel.sh    # also compute-sanitizer memcheck and racecheck on the harness's checks
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-gpu-gla}
mkdir -p "$out"
t0=$(date +%s)
flags=(-std=c++17 -O3 -arch="${ARCH:-sm_90}" --use_fast_math -lineinfo --expt-relaxed-constexpr -Ikernels)
mkdir -p build-kernel-dev
nvcc "${flags[@]}" kernels/dev/gla_forward_dev.cu kernels/gla_kernels.cu -o build-kernel-dev/gla_forward_dev \
  > "$out/dev_build.log" 2>&1 || { head -n 40 "$out/dev_build.log"; exit 1; }
timeout 300 build-kernel-dev/gla_forward_dev > "$out/gla_forward_dev.log" 2>&1
echo "gla_forward_dev rc=$? ($(($(date +%s) - t0)) s)"
grep -E "FAIL|skipped|^checks:|^\[time\]" "$out/gla_forward_dev.log"
if [ -n "${SANITIZE:-}" ]; then
  for tool in memcheck racecheck; do
    timeout 300 compute-sanitizer --tool "$tool" build-kernel-dev/gla_forward_dev --no-bench --B 1 --H 2 --T 130 \
      > "$out/sanitizer_$tool.log" 2>&1
    echo "compute-sanitizer $tool rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|FAIL" "$out/sanitizer_$tool.log" | head -5
  done
fi

# shellcheck source=scripts/gpu_build.sh
source scripts/gpu_build.sh
gpu_build "$out" bla_cuda_tests bla-bench bla-train bla-data || exit 1
timeout 300 "$BUILD_DIR/tests/bla_cuda_tests" --gtest_filter='*GlaKernel*:*TrainStepGraph*gla*:*TrainStepGraph*gsa*' \
  > "$out/cuda_tests.log" 2>&1
echo "cuda tests rc=$? ($(($(date +%s) - t0)) s)"
grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure" "$out/cuda_tests.log" | head -30

shape=(--batch 4 --seq 8192 --heads 16 --dtype bf16 --reps 20 --sets 2 --warmup 5)
for dim in 64 128; do
  for op in gla "gsa --slots 64"; do
    for k in 1 0; do
      # shellcheck disable=SC2086
      BLA_KERNELS=$k timeout 120 "$BUILD_DIR/src/bla-bench" --op $op --dim "$dim" "${shape[@]}" --no-reference \
        --no-ceilings >> "$out/bla_bench.log" 2>&1
      echo "bla-bench --op $op --dim $dim BLA_KERNELS=$k: rc=$?"
    done
  done
done
grep -E "^(gla|gsa)-op" "$out/bla_bench.log"

if [ -z "${SKIP_125M:-}" ]; then
  # shellcheck source=scripts/bench_corpus.sh
  source scripts/bench_corpus.sh
  bench_corpus "$out"
  lm=configs/bench/lm_125m.yaml
  data=data.path=$BUILD_DIR/data/bench_text
  PYTHONUNBUFFERED=1 timeout 360 python3 scripts/bench_train.py --build "$BUILD_DIR" --variants all,no_kernels \
    --json "$out/bench_125m.json" "$lm:none:$data,model.mixer=gla" "$lm:none:$data,model.mixer=gsa" \
    > "$out/bench_125m.txt" 2>&1
  echo "125M rc=$? ($(($(date +%s) - t0)) s)"
  cat "$out/bench_125m.txt"
fi
