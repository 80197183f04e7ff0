#!/usr/bin/env bash
# On a CUDA machine: every mixer op timed by bla-bench (bf16, forward and
# forward+backward, B=4 T=8192 H=16 at D=64 and D=128) and, where the anchor
# sources are there, the public kernels in the same call (FLA chunk_gla and
# chunk_gsa, mamba_ssm's Triton SSD, FlexAttention SWA, cuDNN SDPA), then one
# table of both (scripts/op_table.py). Logs and JSON go to ${OUT:-gpu-ops}/.
#   scripts/gpu_op_table.sh
#   ANCHORS=.anchors scripts/gpu_op_table.sh   # .anchors: bench.py, fla/, mamba/ (git-ignored; README "Benchmarks")
#   DIMS=64 REPS=10 scripts/gpu_op_table.sh    # a shorter run
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-ops}
source scripts/gpu_build.sh
gpu_build "$out" bla-bench || exit 1
B=$BUILD_DIR/src/bla-bench
reps=${REPS:-20}
: > "$out/ours.jsonl"
for dim in ${DIMS:-64 128}; do
  shape=(--batch 4 --seq 8192 --heads 16 --dim "$dim" --dtype bf16 --reps "$reps" --sets 2 --warmup 5 --json)
  ceilings=()  # measured once, with the first op
  for run in "swa --window 512" "swa --window 2048" "attention" "bla --window 512 --slots 64" "gla" \
             "gsa --slots 64" "ssd" "gatedfwa --window 512"; do
    # shellcheck disable=SC2086
    timeout 120 "$B" --op $run "${shape[@]}" --no-reference "${ceilings[@]}" >> "$out/ours.jsonl" 2>> "$out/ours.err"
    echo "bla-bench --op $run --dim $dim: exit $?"
    ceilings=(--no-ceilings)
  done
done
if [ -n "${ANCHORS:-}" ] && [ -f "$ANCHORS/bench.py" ]; then
  shapes=B4_T8192_H16_D64
  [ "${DIMS:-64 128}" != 64 ] && shapes=$shapes,B4_T8192_H16_D128
  ANCHORS=$(realpath "$ANCHORS") PYTHONUNBUFFERED=1 timeout "${ANCHOR_SECONDS:-300}" python3 "$ANCHORS/bench.py" \
    --out "$out/anchors" --deadline "${ANCHOR_SECONDS:-300}" --warm-limit 0 --shapes "$shapes" \
    --only sdpa_cudnn,fla_chunk_gla,fla_chunk_gsa_M64,mamba2_ssd_G=H_N=D,flex_swa_W512,flex_swa_W2048 \
    > "$out/anchors.log" 2>&1
  echo "anchors exit $?"
fi
python3 scripts/op_table.py "$out/ours.jsonl" "$out/anchors/results.json" | tee "$out/table.md"
