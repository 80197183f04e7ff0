#!/usr/bin/env bash
# One warm call (2026-12-08): issue 14's table in one call (Zoology-size MQAR and the 125M model, ours and the
# plain-PyTorch anchor eager and compiled; .anchors/ carried), then the GatedFWA W512 step's profile at 125M.
#   OUT=... bash docs/data/gpu_run_2026_12_08/table_and_profile.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
out=${OUT:-gpu-table}
source scripts/gpu_build.sh
gpu_build "$out" bla-train bla-data || exit 1
source scripts/bench_corpus.sh
bench_corpus "$out" || exit 1
zoology="--d,128,--layers,2,--heads,2,--vocab,8192,--seq,256,--batch,256,--steps,60,--warm,20"
PYTHONUNBUFFERED=1 timeout 240 python3 scripts/bench_train.py --build "$BUILD_DIR" --anchors .anchors --variants all \
  --json "$out/bench_table.json" "configs/bench/mqar_zoology.yaml:$zoology" \
  "configs/bench/lm_125m.yaml:--steps,40,--warm,10:data.path=$BUILD_DIR/data/bench_text" 2>&1 |
  tee "$out/bench_table.txt"
SKIP_BUILD=1 STEPS=25 OUT="$out/profile" timeout 150 scripts/gpu_profile_step.sh \
  "gatedfwa=configs/bench/lm_125m.yaml,data.path=$BUILD_DIR/data/bench_text,model.mixer=gatedfwa,model.mixers.gatedfwa.window=512" \
  "attention=configs/bench/lm_125m.yaml,data.path=$BUILD_DIR/data/bench_text" | tail -5
rm -f "$out/prepare.log" "$out/profile/prepare.log" "$out/profile/build.log"  # 8 files come back at most
find "$out" -type f | sort
