#!/usr/bin/env bash
# After the build in fresh_all.sh (AB=next_ab.sh): GatedFWA's probe (the windows' one-node backward since
# 2026-12-07; against gpu_run_2026_12_07_e/gatedfwa_probe.jsonl, another H100) and BLA v8 beside SWA at the
# op table's shape; everything into $OUT/ab.tgz.
bash .devbin/gatedfwa_probe.sh
shape=(--batch 4 --seq 8192 --heads 16 --dim 64 --dtype bf16 --reps 20 --sets 2 --warmup 5 --json --no-reference --no-ceilings)
for round in 1 2; do
  for op in "bla --window 512 --slots 64" "swa --window 512"; do
    # shellcheck disable=SC2086
    timeout 60 build-gpu/src/bla-bench --op $op "${shape[@]}" | sed "s/^{/{\"round\": $round, /" >> /tmp/probe/bla_v8.jsonl
  done
done
python3 - /tmp/probe/bla_v8.jsonl <<'P'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(f"round {d['round']} {d['op']}:", " ".join(f"{r['pass']} {r['ms']:.3f}" for r in d["results"]))
P
tar czf $OUT/ab.tgz -C /tmp probe $([ -f /tmp/bla_ab.txt ] && echo bla_ab.txt)
