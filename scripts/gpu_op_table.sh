#!/usr/bin/env bash
# On a CUDA machine: every mixer op timed by bla-bench (bf16, forward and
# forward+backward, B=4 T=8192 H=16 at D=64 and D=128) and, where the anchor
# sources are there, the public kernels in the same call (FLA chunk_gla and
# chunk_gsa, mamba_ssm's Triton SSD, FlexAttention SWA, cuDNN SDPA), then one
# table of both (scripts/op_table.py). Logs and JSON go to ${OUT:-gpu-ops}/.
# The anchors start first, compiling beside our build (their compile caches
# come from and go back to compile-cache.txz, scripts/anchor_cache.sh); ours
# are timed after them, with the GPU to themselves.
#   scripts/gpu_op_table.sh
#   ANCHORS=.anchors scripts/gpu_op_table.sh   # .anchors: bench.py, fla/, mamba/ (git-ignored; README "Benchmarks"),
#                                              # run through scripts/anchor_bench.py (adds the D = 128 shape)
#   DIMS=64 REPS=10 scripts/gpu_op_table.sh    # a shorter run
#   ANCHOR_SECONDS=330 ANCHOR_WARM=200         # the anchors' time limit and their parallel compile phase's
#   ANCHOR_SHAPES=B4_T8192_H16_D128            # the anchors' shapes (default: those of DIMS), e.g. the
#                                              # D = 128 shapes a call that timed D = 64 had no time for
#   M125=1 scripts/gpu_op_table.sh             # then the 125M model's tokens/s with each mixer in every
#                                              # layer (scripts/bench_train.py, bench_mixers.json)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-gpu-ops}
mkdir -p "$out"
anchors_pid=
if [ -n "${ANCHORS:-}" ] && [ -f "$ANCHORS/bench.py" ]; then
  source scripts/anchor_cache.sh
  anchor_cache_restore "$ANCHORS"
  shapes=B4_T8192_H16_D64
  [ "${DIMS:-64 128}" != 64 ] && shapes=$shapes,B4_T8192_H16_D128
  shapes=${ANCHOR_SHAPES:-$shapes}
  limit=${ANCHOR_SECONDS:-330}
  anchors_dir=$(realpath "$ANCHORS")
  ANCHORS=$anchors_dir PYTHONUNBUFFERED=1 timeout "$limit" python3 scripts/anchor_bench.py \
    --out "$out/anchors" --deadline $((limit - 15)) --warm-limit "${ANCHOR_WARM:-200}" --shapes "$shapes" \
    --only sdpa_cudnn,fla_chunk_gla,fla_chunk_gsa_M64,mamba2_ssd_G=H_N=D,flex_swa_W512,flex_swa_W2048 \
    > "$out/anchors.log" 2>&1 &
  anchors_pid=$!
fi
source scripts/gpu_build.sh
targets=(bla-bench)
[ -n "${M125:-}" ] && targets+=(bla-train bla-data)
gpu_build "$out" "${targets[@]}" || exit 1
if [ -n "$anchors_pid" ]; then
  wait "$anchors_pid"
  echo "anchors exit $?"
  anchor_cache_save "$out"
fi
B=$BUILD_DIR/src/bla-bench
reps=${REPS:-20}
: > "$out/ours.jsonl"
for dim in ${DIMS:-64 128}; do
  shape=(--batch 4 --seq 8192 --heads 16 --dim "$dim" --dtype bf16 --reps "$reps" --sets 2 --warmup 5 --json)
  ceilings=()  # measured once, with the first op
  for run in "swa --window 512" "swa --window 2048" "attention" "bla --window 512 --slots 64" "gla" \
             "gsa --slots 64" "ssd" "ssd --kernel-backward" "gatedfwa --window 512"; do
    # shellcheck disable=SC2086
    timeout 120 "$B" --op $run "${shape[@]}" --no-reference "${ceilings[@]}" >> "$out/ours.jsonl" 2>> "$out/ours.err"
    echo "bla-bench --op $run --dim $dim: exit $?"
    ceilings=(--no-ceilings)
  done
done
python3 scripts/op_table.py "$out/ours.jsonl" "$out/anchors/results.json" | tee "$out/table.md"
if [ -n "${M125:-}" ]; then
  # shellcheck source=scripts/bench_corpus.sh
  source scripts/bench_corpus.sh
  bench_corpus "$out"
  lm=configs/bench/lm_125m.yaml
  data=data.path=$BUILD_DIR/data/bench_text
  PYTHONUNBUFFERED=1 timeout "${M125_SECONDS:-300}" python3 scripts/bench_train.py --build "$BUILD_DIR" \
    --variants all --json "$out/bench_mixers.json" "$lm:none:$data" \
    "$lm:none:$data,model.mixer=swa,model.mixers.swa.window=512" \
    "$lm:none:$data,model.mixer=bla,model.mixers.bla.window=512,model.mixers.bla.slots=64" \
    "$lm:none:$data,model.mixer=gatedfwa,model.mixers.gatedfwa.window=512" "$lm:none:$data,model.mixer=mamba2" \
    "$lm:none:$data,model.mixer=gla" "$lm:none:$data,model.mixer=gsa" > "$out/bench_mixers.txt" 2>&1
  echo "125M mixers exit $?"
  cat "$out/bench_mixers.txt"
fi
# The device returns at most 8 files: the logs travel as one archive beside
# the results (table.md, ours.jsonl, anchors/results.json, compile-cache.txz).
(cd "$out" && tar czf logs.tgz --remove-files --ignore-failed-read build.log ours.err anchors.log anchors/warm.log \
  anchors/table.md prepare.log bench_mixers.txt 2>/dev/null)
