#!/usr/bin/env bash
# Next session, device call 1 (carry [".anchors", ".devbin"]): the GLA/GSA kernel changes since 6308f05 on the GPU
# (CUDA tests, the harness and its sanitizers, op timings beside 6308f05's build, per-kernel ncu), then the BLA
# sweep for the rest of the call. The harnesses in .devbin were built with nvcc here at c22f44b
# (kernels unchanged since; rebuild if kernels/ changed: scripts/build_dev_harnesses.sh .devbin).
set -uo pipefail
t0=$(date +%s); o=/tmp/o; rm -rf $o; mkdir -p $o
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; el start
rm -rf /tmp/base && mkdir -p /tmp/base && tar xzf .devbin/base_6308f05.tgz -C /tmp/base
(cd /tmp/base && BUILD_DIR=build-gpu JOBS=5 scripts/build.sh bla-bench) > $o/build_base.log 2>&1 &
bp=$!
OUT=$o/mk DEV_BIN=.devbin SANITIZE=1 SANITIZE_TIMEOUT=60 NCU=1 SKIP_125M=1 BENCH_DIMS=64 BENCH_KERNELS=1 \
  BENCH_OPS="gla,gsa --slots 64" scripts/gpu_mixer_kernels.sh > $o/mixer_kernels.txt 2>&1
echo "gpu_mixer_kernels rc=$?"; tail -45 $o/mixer_kernels.txt
el mixer-kernels
wait $bp; echo "base build rc=$?"
shape=(--batch 4 --seq 8192 --heads 16 --dim 64 --dtype bf16 --reps 20 --sets 2 --warmup 5 --no-reference --no-ceilings)
for tree in /tmp/base/build-gpu build-gpu /tmp/base/build-gpu build-gpu; do
  for op in gla "gsa --slots 64"; do
    # shellcheck disable=SC2086
    timeout 60 $tree/src/bla-bench --op $op "${shape[@]}" 2>&1 | grep -E "^(gla|gsa)-op" | sed "s#^#$tree #" | tee -a $o/ab.txt
  done
done
el ab
tar czf $OUT/all.tgz -C $o .
left=$(( ${LIMIT_ALL:-575} - ($(date +%s) - t0) ))
el "sweep for $left s"
if [ $left -gt 120 ]; then
  SWEEP=configs/sweeps/mqar.yaml ONLY=bla GPUS=0 LIMIT=$left OUT=$OUT/sw RESTORE=docs/data/mqar_protocol/full/call6_runs.tgz \
    scripts/gpu_sweep.sh 2>&1 | tail -25
fi
el end
