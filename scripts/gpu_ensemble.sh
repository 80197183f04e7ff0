#!/usr/bin/env bash
# On a CUDA machine: build, run the CUDA tests of ensembles (each member
# against its solo run), then time 16 Zoology-size MQAR models as one
# ensemble, as 16 processes side by side (default and old step) and one alone
# (docs/performance.md, "Ensembles"). Logs go to ${OUT:-gpu-ensemble}/.
#   scripts/gpu_ensemble.sh
#   SKIP_TESTS=1 / SKIP_BENCH=1   MEMBERS=16   MODES=ensemble,separate,separate_old,solo
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-ensemble}
source scripts/gpu_build.sh
gpu_build "$out" bla_cuda_tests bla-train || exit 1
if [ -z "${SKIP_TESTS:-}" ]; then
  timeout 300 "$BUILD_DIR/tests/bla_cuda_tests" --gtest_filter="${TEST_FILTER:-*EnsembleOnGpu*:*TrainStep*}" > "$out/tests.log" 2>&1
  echo "cuda tests rc=$?"
  grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure|Expected|Which is" "$out/tests.log" | head -40
fi
if [ -z "${SKIP_BENCH:-}" ]; then
  # The Zoology-size model of the training-step benchmark (vocabulary 8192).
  PYTHONUNBUFFERED=1 timeout 420 python3 scripts/bench_ensemble.py --build "$BUILD_DIR" --members "${MEMBERS:-16}" \
    --modes "${MODES:-ensemble,separate,separate_old,solo,one_model}" --json "$out/bench_ensemble.json" \
    configs/bench/mqar_zoology.yaml --set train.steps=${STEPS:-250} --set train.log_every=25 2>&1 | tee "$out/bench_ensemble.txt"
  # A point of the earlier MQAR state sweep (vocabulary 512, BLA with 16 slots over 256 tokens, SwiGLU MLP).
  if [ -z "${SKIP_SWEEP_SHAPE:-}" ]; then
    PYTHONUNBUFFERED=1 timeout 420 python3 scripts/bench_ensemble.py --build "$BUILD_DIR" --members "${MEMBERS:-16}" \
      --modes "${SWEEP_MODES:-ensemble,separate,solo,one_model}" --json "$out/bench_ensemble_sweep.json" \
      configs/mqar_bla.yaml --set run.device=cuda --set run.threads=0 --set model.d_model=128 --set model.mixers.bla.window=256 \
      --set model.mixers.bla.slots=16 --set data.vocab_size=512 --set data.seq_len=256 --set data.num_kv_pairs=16 \
      --set data.train_examples=100000 --set train.batch_size=256 --set train.steps=${STEPS:-250} --set train.log_every=25 \
      --set train.eval_every=0 --set train.checkpoint_every=0 --set train.eval_examples=256 2>&1 | tee "$out/bench_ensemble_sweep.txt"
  fi
fi
