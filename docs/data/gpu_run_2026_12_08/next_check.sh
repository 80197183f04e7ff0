#!/usr/bin/env bash
# The next session's check of project_stacked's aligned views and biases after the product (88c3f9c, f8d975e) on a
# GPU, run by gpu_protocol.sh before the sweep (from the repository root, after its build):
#   BUILD_MORE="bla_cuda_tests bla-data" BEFORE="bash docs/data/gpu_run_2026_12_08/next_check.sh" \
#     SKIP_RB=1 CHECKPOINTS=2 CALL_LIMIT=560 scripts/gpu_protocol.sh   # CHECKPOINTS=2: 8 files back
# The CUDA tests of GatedFWA and the step, then the 125M model's tokens/s with attention and GatedFWA W512 in one
# bench_train.py, then GatedFWA's step profile. Files under $OUT/check (packed into $OUT/check.tgz: 8 files a call).
set -uo pipefail
out=${OUT:-gpu-check}/check
mkdir -p "$out"
build=${BUILD_DIR:-build-gpu}
timeout 150 "$build/tests/bla_cuda_tests" --gtest_filter='*Gatedfwa*:*TrainStep*' > "$out/cuda_tests.log" 2>&1
echo "cuda tests rc=$?"
grep -E "^\[  (PASSED|FAILED) |FAILED  \]" "$out/cuda_tests.log" | head -20
export BUILD_DIR=$build
source scripts/bench_corpus.sh
bench_corpus "$out" || exit 1
data=data.path=$build/data/bench_text
PYTHONUNBUFFERED=1 timeout 150 python3 scripts/bench_train.py --build "$build" --variants all \
  --json "$out/bench_125m.json" "configs/bench/lm_125m.yaml:--steps,40,--warm,10:$data" \
  "configs/bench/lm_125m.yaml:none:$data,model.mixer=gatedfwa,model.mixers.gatedfwa.window=512" 2>&1 |
  tee "$out/bench_125m.txt"
SKIP_BUILD=1 STEPS=25 OUT="$out/profile" timeout 90 scripts/gpu_profile_step.sh \
  "gatedfwa=configs/bench/lm_125m.yaml,$data,model.mixer=gatedfwa,model.mixers.gatedfwa.window=512" | head -30
tar czf "${OUT:-gpu-check}/check.tgz" -C "$(dirname "$out")" check && rm -rf "$out"
