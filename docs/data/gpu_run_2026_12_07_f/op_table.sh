#!/usr/bin/env bash
# Warm call after fresh_all.sh (carry [".devbin", ".anchors"], .anchors with compile-cache.txz): every op at D=64
# and D=128 beside the anchors at both widths, one table from one call.
#   bash .devbin/op_table.sh   (the D=128 anchors through scripts/anchor_bench.py since 2026-12-07)
ANCHORS=.anchors ANCHOR_WARM=${ANCHOR_WARM:-300} ANCHOR_SECONDS=${ANCHOR_SECONDS:-500} OUT=$OUT/ops \
  timeout 570 scripts/gpu_op_table.sh > $OUT/op_table.log 2>&1
echo "op table rc=$?"
tail -30 $OUT/op_table.log
find $OUT -type f | sort
