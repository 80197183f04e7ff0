#!/usr/bin/env bash
# On a CUDA machine: build, run the CUDA tests of the training step and of the
# fused model kernels, then time training beside the plain-PyTorch anchor
# (docs/performance.md, "The training step"). Logs go to ${OUT:-gpu-step}/.
#   scripts/gpu_train_step.sh
#   ANCHORS=path/to/anchors scripts/gpu_train_step.sh   # lm_baseline.py there is timed in the same call
#   SKIP_TESTS=1 / SKIP_BENCH=1                          # leave out the tests / the benchmark
#   TEST_FILTER='TrainStep*'  VARIANTS=all,no_graph      # narrower runs
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-step}
source scripts/gpu_build.sh
gpu_build "$out" bla_cuda_tests bla-train bla-data bla-bench || exit 1

if [ -z "${SKIP_TESTS:-}" ]; then
  timeout 300 "$BUILD_DIR/tests/bla_cuda_tests" --gtest_filter="${TEST_FILTER:-*TrainStep*:*ModelKernel*}" > "$out/tests.log" 2>&1
  echo "cuda tests rc=$?"
  grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure|bit-identical|rel err" "$out/tests.log" | head -40
fi

if [ -z "${SKIP_BENCH:-}" ]; then
  # shellcheck source=scripts/bench_corpus.sh
  source scripts/bench_corpus.sh
  bench_corpus "$out"
  anchors=()
  [ -n "${ANCHORS:-}" ] && anchors=(--anchors "$ANCHORS")
  zoology="--d,128,--layers,2,--heads,2,--vocab,8192,--seq,256,--batch,256,--steps,60,--warm,20"
  PYTHONUNBUFFERED=1 timeout 300 python3 scripts/bench_train.py --build "$BUILD_DIR" "${anchors[@]}" \
    --variants "${VARIANTS:-all,no_graph,fused_head,no_fused_opt,sync,baseline}" --json "$out/bench_zoology.json" \
    "configs/bench/mqar_zoology.yaml:$zoology" 2>&1 | tee "$out/bench_zoology.txt"
  PYTHONUNBUFFERED=1 timeout 400 python3 scripts/bench_train.py --build "$BUILD_DIR" "${anchors[@]}" \
    --variants "${VARIANTS_125M:-all,fused_head,no_graph,baseline}" --json "$out/bench_lm125m.json" \
    "configs/bench/lm_125m.yaml:--steps,40,--warm,10:data.path=$BUILD_DIR/data/bench_text" 2>&1 | tee "$out/bench_lm125m.txt"
  # The other mixers at 125M, every part on (their ratio to attention's tokens/s is a target).
  if [ -z "${SKIP_MIXERS:-}" ]; then
    PYTHONUNBUFFERED=1 timeout 300 python3 scripts/bench_train.py --build "$BUILD_DIR" --variants all \
      --json "$out/bench_mixers.json" \
      "configs/bench/lm_125m.yaml:none:data.path=$BUILD_DIR/data/bench_text,model.mixer=swa,model.mixers.swa.window=512" \
      "configs/bench/lm_125m.yaml:none:data.path=$BUILD_DIR/data/bench_text,model.mixer=bla,model.mixers.bla.window=512,model.mixers.bla.slots=64" \
      "configs/bench/lm_125m.yaml:none:data.path=$BUILD_DIR/data/bench_text,model.mixer=gatedfwa,model.mixers.gatedfwa.window=512" \
      2>&1 | tee "$out/bench_mixers.txt"
  fi
fi
