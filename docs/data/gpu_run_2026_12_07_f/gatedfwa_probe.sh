#!/usr/bin/env bash
# Where GatedFWA's time goes beside SWA's (bf16, B4 T8192 H16 D64, W512): the SWA kernel alone, with a bias
# (no bias gradient), the gatedfwa op as training calls it; then ncu's per-kernel times of one gatedfwa
# forward+backward. Into /tmp/probe (gla_blocks_ab.sh packs it).
p=/tmp/probe; rm -rf $p; mkdir -p $p
shape=(--batch 4 --seq 8192 --heads 16 --dim 64 --window 512 --dtype bf16 --reps 20 --sets 2 --warmup 5 --json --no-reference --no-ceilings)
for op in "swa" "swa --bias" "gatedfwa"; do
  # shellcheck disable=SC2086
  timeout 60 build-gpu/src/bla-bench --op $op "${shape[@]}" >> $p/probe.jsonl 2>> $p/probe.err
  echo "probe $op: exit $?"
done
python3 - $p/probe.jsonl <<'P'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(d['op'], 'bias' if d.get('bias') else '', " ".join(f"{r['pass']} {r['ms']:.3f}" for r in d["results"]))
P
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -n "$ncu" ]; then
  timeout 120 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --log-file $p/ncu_gatedfwa.csv \
    build-gpu/src/bla-bench --op gatedfwa --window 512 --pass fwdbwd --warmup 1 --reps 1 --sets 1 --no-ceilings \
    --no-reference > /dev/null 2>&1
  echo "ncu rc=$?"; python3 scripts/ncu_kernel_times.py $p/ncu_gatedfwa.csv --per 2 | head -40
fi
