#!/usr/bin/env bash
# Warm call after fresh_all.sh (carry [".devbin", ".anchors"], .anchors with compile-cache.txz): every op at D=64
# and D=128 beside the anchors at both widths, one table from one call.
#   bash .devbin/op_table.sh
ANCHORS=.anchors ANCHOR_WARM=${ANCHOR_WARM:-280} ANCHOR_SECONDS=${ANCHOR_SECONDS:-450} OUT=$OUT/ops \
  timeout 570 scripts/gpu_op_table.sh > $OUT/op_table.log 2>&1
echo "op table rc=$?"
tail -30 $OUT/op_table.log
find $OUT -type f | sort
