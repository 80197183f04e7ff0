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
grep -E "^BLA_NCCL_INCLUDE_DIR|^Torch_DIR" "$BUILD_DIR/CMakeCache.txt"
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

# 125M-parameter training throughput on one GPU: attention (SDPA), SWA and
# BLA with the kernels and with BLA_KERNELS=0 (docs/performance.md).
B=$BUILD_DIR/src
big=(configs/dist_125m.yaml --set train.steps=40 --set train.log_every=10)
if [ -z "${SKIP_125M:-}" ]; then
  $B/bla-train "${big[@]}" --out "$out/m125_attention" > "$out/m125.log" 2>&1; echo "125m attention exit $?"
  for k in 1 0; do
    BLA_KERNELS=$k $B/bla-train "${big[@]}" --out "$out/m125_swa512_k$k" --set model.mixer=swa \
      --set model.mixers.swa.window=512 >> "$out/m125.log" 2>&1; echo "125m swa kernels=$k exit $?"
  done
  $B/bla-train "${big[@]}" --out "$out/m125_bla64_w512" --set model.mixer=bla --set model.mixers.bla.window=512 \
    --set model.mixers.bla.slots=64 >> "$out/m125.log" 2>&1; echo "125m bla exit $?"
  python3 scripts/measure_125m.py "$out/m125_attention:1" "$out/m125_swa512_k1:1" "$out/m125_swa512_k0:1" \
    "$out/m125_bla64_w512:1"
fi

# Data-parallel throughput where there are 2+ GPUs (docs/distributed.md).
gpus=$(nvidia-smi -L | wc -l)
if [ "$gpus" -ge 2 ] && [ -z "${SKIP_DDP:-}" ]; then
  common=("${big[@]}")
  base_run=$out/m125_attention  # the same run on one GPU, if made above
  if [ ! -e "$base_run/metrics.jsonl" ]; then
    base_run=$out/dist_g1
    CUDA_VISIBLE_DEVICES=0 $B/bla-train "${common[@]}" --out "$base_run" > "$out/dist.log" 2>&1
    echo "g1 exit $?"
  fi
  CUDA_VISIBLE_DEVICES=0,1 $B/bla-launch --nproc-per-node 2 --master-port 0 -- $B/bla-train "${common[@]}" \
    --out "$out/dist_g2" --set train.batch_size=16 >> "$out/dist.log" 2>&1
  echo "g2 bla-launch exit $?"
  CUDA_VISIBLE_DEVICES=0,1 torchrun --no-python --standalone --nproc-per-node=2 $B/bla-train "${common[@]}" \
    --out "$out/dist_g2_torchrun" --set train.batch_size=16 >> "$out/dist.log" 2>&1
  echo "g2 torchrun exit $?"
  CUDA_VISIBLE_DEVICES=0,1 BLA_DIST_TIMING=1 $B/bla-launch --nproc-per-node 2 --master-port 0 -- $B/bla-train \
    "${common[@]}" --out "$out/dist_g2_timed" --set train.batch_size=16 >> "$out/dist.log" 2>&1
  echo "g2 timed exit $?"
  grep -h "rank\|error" "$out/dist.log" | grep -iv "step\|eval" | head -n 20
  python3 scripts/measure_125m.py "$base_run:1" "$out/dist_g2:2" "$out/dist_g2_torchrun:2" "$out/dist_g2_timed:2"
fi
