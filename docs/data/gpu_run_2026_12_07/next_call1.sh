#!/usr/bin/env bash
# Device call 1 (fresh; carry [".anchors", ".devbin"]):  LIMIT=450 bash .devbin/next_call1.sh
# The three bank-conflict variants against the default build (scripts/gpu_variant_ab.sh), everything back in ab.tgz;
# then warm: `LIMIT=... FINISH_BY=... bash .devbin/both.sh`.
set -uo pipefail
OUT_AB=/tmp/ab; rm -rf $OUT_AB
VARIANT=-DBLA_MMA_STORE_ORDER,BLA_MMA_PAIRED_K,BLA_VALUE_STRIDE8 DEFAULT_TARGETS="bla-train bla-sweep" \
  BENCH='--op bla --window 512 --slots 64;--op bla --window 512 --slots 64 --batch 8 --seq 2048 --heads 12' \
  NCU='regex:bla_chunk_(forward|backward_scores|backward_inputs)_kernel' NCU_LAUNCHES=3 \
  OUT=$OUT_AB LIMIT=${LIMIT:-450} scripts/gpu_variant_ab.sh
tar czf $OUT/ab.tgz -C /tmp ab
