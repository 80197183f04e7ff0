#!/usr/bin/env bash
# On a CUDA machine (sm_90): build the SSD kernel development harness
# (kernels/dev/README_ssd.md) with nvcc alone (no CMake, no LibTorch), check
# every version against the CPU float64 reference, time them, and run
# compute-sanitizer on a small shape. Logs go to ${OUT:-gpu-ssd-dev}/.
# Fits one 10-minute device call (each step has its own timeout).
#   export OUT; scripts/gpu_ssd_dev.sh
#   SSD_ARGS="--reps 50" scripts/gpu_ssd_dev.sh   # extra harness options (ssd_chunk_dev.cu's header)
#   SKIP_SANITIZER=1 scripts/gpu_ssd_dev.sh        # leave out memcheck and racecheck
#   NCU=1 scripts/gpu_ssd_dev.sh                   # also Nsight Compute sections of the v3 (production) kernels
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-gpu-ssd-dev}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.memory --format=csv,noheader | tee "$out/gpu.txt"
nvcc --version | tail -2 | head -1
bin=$out/ssd_chunk_dev
t0=$(date +%s)
nvcc -std=c++17 -arch=sm_90 -O3 -lineinfo -Xptxas -v -o "$bin" kernels/dev/ssd_chunk_dev.cu > "$out/build.log" 2>&1 ||
  { grep -E "error" -A3 "$out/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
grep -E "spill (stores|loads)" "$out/build.log" | grep -vE " 0 bytes spill stores, 0 bytes spill loads" | head -5

# Checks (every version, both dtypes, the case list in ssd_chunk_dev.cu) and timings.
# shellcheck disable=SC2086
timeout 300 "$bin" ${SSD_ARGS:-} > "$out/ssd_dev.log" 2>&1
echo "ssd_chunk_dev rc=$? ($(( $(date +%s) - t0 )) s)"
grep -E "^device:|FAIL|SKIP|^checks:" "$out/ssd_dev.log" | cut -c1-220 | head -40
grep -E "^\[time\]|per kernel|vs v1" "$out/ssd_dev.log" | cut -c1-220

# Out-of-bounds accesses and shared-memory races on one small case with
# padding (T not a multiple of the chunk), an initial state and a skip.
if [ -z "${SKIP_SANITIZER:-}" ] && command -v compute-sanitizer > /dev/null; then
  small=(--B 1 --T 150 --H 2 --no-bench --only 'T%chunk')
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin" "${small[@]}" > "$out/memcheck.log" 2>&1
  echo "memcheck rc=$?"
  timeout 180 compute-sanitizer --tool racecheck --error-exitcode 9 "$bin" "${small[@]}" > "$out/racecheck.log" 2>&1
  echo "racecheck rc=$?"
  grep -hE "ERROR SUMMARY|RACECHECK SUMMARY|^checks:" "$out/memcheck.log" "$out/racecheck.log"
fi

if [ -n "${NCU:-}" ]; then
  ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [ -n "$ncu" ]; then
    timeout 240 "$ncu" --section SpeedOfLight --section Occupancy --section MemoryWorkloadAnalysis \
      -k regex:ssd_chunk --launch-count 6 "$bin" --no-check --no-backward --reps 1 > "$out/ncu_v3.txt" 2>&1
    echo "ncu rc=$?"
    grep -E "ssd_chunk_[a-z_]*|Duration|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy" \
      "$out/ncu_v3.txt" | cut -c1-160 | head -40
  fi
fi
echo "total: $(( $(date +%s) - t0 )) s"
