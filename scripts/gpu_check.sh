#!/usr/bin/env bash
# On a CUDA machine: build with PyTorch's LibTorch, run the whole test suite
# (CPU tests and the tests labelled cuda), then short GPU training runs and
# the kernel benchmark. Logs go to ${OUT:-gpu-check}/.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
export BUILD_DIR=${BUILD_DIR:-build-gpu}
{ time scripts/build.sh; } > "$out/build.log" 2>&1 || { tail -n 60 "$out/build.log"; exit 1; }
tail -n 3 "$out/build.log"
ctest --test-dir "$BUILD_DIR" -j 8 --output-on-failure -LE slow > "$out/ctest.log" 2>&1
echo "ctest exit $?"; tail -n 25 "$out/ctest.log"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for mixer in attention swa bla; do
  cfg=configs/mqar_${mixer}.yaml
  [ -f "$cfg" ] || continue
  "$BUILD_DIR/src/bla-train" "$cfg" --out "$out/run_$mixer" --set train.steps=300 --set train.log_every=100 \
    > "$out/train_$mixer.log" 2>&1
  echo "train $mixer exit $?"; grep -E "step 300|done:" "$out/train_$mixer.log"
done
"$BUILD_DIR/src/bla-bench" --op swa --batch 4 --seq 8192 --heads 16 --dim 64 --window 512 --dtype bf16 \
  > "$out/bench.log" 2>&1; echo "bench exit $?"; tail -n 15 "$out/bench.log"
