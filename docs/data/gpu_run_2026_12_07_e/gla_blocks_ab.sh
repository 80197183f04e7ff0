#!/usr/bin/env bash
# GLA and GSA at D=128 (bf16, B4 T8192 H16, the op table's shape) with the head-dim blocks (the default) and
# without (BLA_GLA_HEAD_BLOCKS=0: the fp32 kernels on the whole head), alternately, two rounds: one JSON line
# each into gla_blocks_ab.jsonl, packed with the errors as $OUT/ab.tgz. Needs build-gpu/src/bla-bench.
#   bash .devbin/gla_blocks_ab.sh
ab=/tmp/ab; rm -rf $ab; mkdir -p $ab
shape=(--batch 4 --seq 8192 --heads 16 --dim 128 --dtype bf16 --reps 20 --sets 2 --warmup 5 --json --no-reference --no-ceilings)
for round in 1 2; do
  for blocks in 1 0; do
    for op in "gla" "gsa --slots 64"; do
      # shellcheck disable=SC2086
      BLA_GLA_HEAD_BLOCKS=$blocks timeout 60 build-gpu/src/bla-bench --op $op "${shape[@]}" 2>> $ab/gla_blocks_ab.err \
        | sed "s/^{/{\"round\": $round, \"head_blocks\": $blocks, /" >> $ab/gla_blocks_ab.jsonl
      echo "round $round head_blocks $blocks $op: exit ${PIPESTATUS[0]}"
    done
  done
done
python3 - "$ab/gla_blocks_ab.jsonl" <<'P'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    times = " ".join(f"{r['pass']} {r['ms']:.3f}" for r in d["results"])
    print(f"round {d['round']} head_blocks {d['head_blocks']} {d['op']} dim {d['dim']}: {times} ms ({d['results'][0]['impl']})")
P
# With the BLA kernels' A/B beside it where fresh_all.sh ran one.
bash .devbin/gatedfwa_probe.sh
tar czf $OUT/ab.tgz -C /tmp ab $([ -f /tmp/bla_ab.txt ] && echo bla_ab.txt) $([ -d /tmp/probe ] && echo probe)
