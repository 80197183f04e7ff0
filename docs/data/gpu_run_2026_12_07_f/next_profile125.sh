#!/usr/bin/env bash
# Warm call after fresh_all.sh: where the 125M step's GPU time goes (issue 14's MFU target), attention and
# GatedFWA (window 512), 25 steps, 5 profiled after the graph's capture; everything into $OUT/prof.tgz.
#   bash .devbin/profile125.sh
mkdir -p /tmp/prof
OUT=/tmp/prof STEPS=25 PROFILE_STEPS=5 SHOW=45 RUN_TIMEOUT=150 timeout 330 scripts/gpu_profile_step.sh \
  attention=configs/bench/lm_125m.yaml \
  gatedfwa=configs/bench/lm_125m.yaml,model.mixer=gatedfwa,model.mixers.gatedfwa.window=512 > /tmp/prof/profile.out 2>&1
echo "profile rc=$?"
cat /tmp/prof/profile.out | head -120
# Per-kernel times of one GLA forward+backward at the op table's shape (where its 9.7 ms go since the
# head-dim blocks and reversed passes): ncu, one warm-up and one timed iteration.
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -n "$ncu" ]; then
  timeout 120 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --log-file /tmp/prof/ncu_gla.csv \
    build-gpu/src/bla-bench --op gla --pass fwdbwd --warmup 1 --reps 1 --sets 1 --no-ceilings --no-reference > /dev/null 2>&1
  echo "ncu gla rc=$?"; python3 scripts/ncu_kernel_times.py /tmp/prof/ncu_gla.csv --per 2 | head -30
fi
tar czf $OUT/prof.tgz -C /tmp prof
