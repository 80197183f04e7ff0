#!/usr/bin/env bash
# Warm machine (build-gpu has bla-bench): the BLA op at the MQAR protocol's shape (an ensemble of 4: batch 1024,
# seq 256, heads 2, dim 64, window 256) against SWA there, and ncu per kernel. Output $OUT/probe.
set -uo pipefail
o=$OUT/probe; mkdir -p $o
[ -x build-gpu/src/bla-bench ] || timeout 200 cmake --build build-gpu --target bla-bench > $o/build.log 2>&1
b=build-gpu/src/bla-bench; s="--batch 1024 --seq 256 --heads 2 --dim 64 --warmup 5 --reps 20 --sets 3 --no-ceilings --no-reference"
for n in 128 64 32; do echo "== bla N$n" >> $o/bench.txt; timeout 40 $b --op bla --window 256 --slots $n $s >> $o/bench.txt 2>&1; done
for w in 128 64; do echo "== swa W$w" >> $o/bench.txt; timeout 40 $b --op swa --window $w $s >> $o/bench.txt 2>&1; done
grep -E "^==|kernel|ms" $o/bench.txt | head -40
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for n in 128 32; do
  [ -n "$ncu" ] || break
  timeout 60 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --log-file $o/ncu_bla_N$n.csv \
    $b --op bla --window 256 --slots $n --batch 1024 --seq 256 --heads 2 --pass fwdbwd --warmup 1 --reps 1 --sets 1 \
    --no-ceilings --no-reference > /dev/null 2>&1
  echo "ncu N$n rc=$?"; python3 scripts/ncu_kernel_times.py $o/ncu_bla_N$n.csv --per 2 | head -14
done
