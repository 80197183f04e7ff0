#!/usr/bin/env bash
# Device call 3 (carry [".anchors", ".devbin"]): the GLA kernel changes since 1299a53 (loads, launch bounds,
# diagonal pairs, two-pass gate gradient) on the GPU: tests, harness checks, memcheck, op timings beside
# 1299a53's build in the same call, per-kernel ncu. Everything is written under $OUT as it goes.
set -uo pipefail
t0=$(date +%s); o=$OUT
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; el start
rm -rf /tmp/base && mkdir -p /tmp/base && tar xzf .devbin/base_1299a53.tgz -C /tmp/base
(cd /tmp/base && BUILD_DIR=build-gpu JOBS=5 scripts/build.sh bla-bench) > $o/build_base.log 2>&1 &
bp=$!
OUT=$o/mk DEV_BIN=.devbin HARNESSES=gla_forward_dev SANITIZE=1 SANITIZE_TIMEOUT=50 NCU=1 SKIP_125M=1 BENCH_DIMS=64 \
  BENCH_KERNELS=1 BENCH_OPS="gla,gsa --slots 64" scripts/gpu_mixer_kernels.sh > $o/mixer_kernels.txt 2>&1
echo "gpu_mixer_kernels rc=$?"; tail -40 $o/mixer_kernels.txt
el mixer-kernels
wait $bp; echo "base build rc=$?"; el base-built
shape=(--batch 4 --seq 8192 --heads 16 --dtype bf16 --reps 20 --sets 2 --warmup 5 --no-reference --no-ceilings)
for tree in /tmp/base/build-gpu build-gpu /tmp/base/build-gpu build-gpu; do
  for op in gla "gsa --slots 64"; do
    # shellcheck disable=SC2086
    timeout 60 $tree/src/bla-bench --op $op --dim 64 "${shape[@]}" 2>&1 | grep -E "^(gla|gsa)-op" | sed "s#^#$tree D64 #" | tee -a $o/ab.txt
  done
done
el ab64
for tree in /tmp/base/build-gpu build-gpu; do
  timeout 90 $tree/src/bla-bench --op gla --dim 128 "${shape[@]}" 2>&1 | grep -E "^gla-op" | sed "s#^#$tree D128 #" | tee -a $o/ab.txt
done
el end
