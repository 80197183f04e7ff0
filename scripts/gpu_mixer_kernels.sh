#!/usr/bin/env bash
# On a CUDA machine: the GLA, GSA and Mamba2-like (SSD) kernels
# (bla_kernels/gla.h, bla_kernels/ssd.h) checked and timed in one call: the
# development harnesses (kernels/dev/gla_forward_dev.cu and
# kernels/dev/ssd_chunk_dev.cu: the kernels against token loops in float64,
# then forward timings), the CUDA tests of the ops (GlaKernel*,
# Mamba2Kernel*) and of the captured training step with GLA, GSA and
# Mamba2-like layers, bla-bench --op gla, gsa and ssd with the kernels and
# with BLA_KERNELS=0 (the LibTorch forms; ssd also with the kernels'
# backward), GatedFWA's op beside SWA's, the plain head's kernel and every
# captured step, and the 125M model's tokens/s with each mixer in every
# layer (GLA and GSA also with BLA_KERNELS=0). Logs go to
# ${OUT:-gpu-mixer-kernels}/.
#   scripts/gpu_mixer_kernels.sh
#   SKIP_DEV=1 scripts/gpu_mixer_kernels.sh    # leave out the development harnesses
#   HARNESSES=gla_forward_dev scripts/gpu_mixer_kernels.sh  # run only this one of the two
#   SKIP_125M=1 scripts/gpu_mixer_kernels.sh   # leave out the 125M runs (SKIP_125M_OFF=1: only those with kernels)
#   SKIP_BENCH=1 scripts/gpu_mixer_kernels.sh  # leave out the bla-bench timings
#   BENCH_DIMS=64 BENCH_KERNELS=1 BENCH_OPS="gla,gsa --slots 64" scripts/gpu_mixer_kernels.sh
#                                              # fewer timings: these head dims, ops (comma-separated)
#                                              # and BLA_KERNELS values only
#   SKIP_TESTS=1 scripts/gpu_mixer_kernels.sh  # leave out the CUDA tests
#   MIXERS_125M="attention gla gsa" scripts/gpu_mixer_kernels.sh  # the 125M runs of these mixers only
#   SANITIZE=1 scripts/gpu_mixer_kernels.sh    # also compute-sanitizer memcheck and racecheck on the harnesses' checks
#                                              # (SANITIZE_TIMEOUT=s: each sanitizer run's limit, default 240)
#   DEV_BIN=.devbin scripts/gpu_mixer_kernels.sh  # the harnesses as built beforehand, without a GPU, by
#                                              # scripts/build_dev_harnesses.sh .devbin (carry the folder)
#   HARNESSES_ONLY=1 scripts/gpu_mixer_kernels.sh  # only the harnesses, without the library's build (with
#                                              # DEV_BIN, nothing is compiled on the GPU machine)
#   NCU=1 scripts/gpu_mixer_kernels.sh         # also every kernel of two forward+backward passes of bla-bench
#                                              # --op gla and gsa at D 64, timed by Nsight Compute and summed
#                                              # by kernel (scripts/ncu_kernel_times.py): where the op's time goes
#   NCU_DETAIL="gla_chunk_output_tc bla_chunk_forward" scripts/gpu_mixer_kernels.sh
#                                              # ncu's analysis sections (throughput, occupancy, warp stalls,
#                                              # memory) for one launch of each kernel named (a regex), as text
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-gpu-mixer-kernels}
mkdir -p "$out"
t0=$(date +%s)
dev_bin=${DEV_BIN:-build-kernel-dev}
failed=0
if [ -n "${HARNESSES_ONLY:-}" ] && [ -n "${SKIP_DEV:-}" ]; then
  echo "HARNESSES_ONLY=1 with SKIP_DEV=1 leaves nothing to run" >&2
  exit 2
fi
if [ -z "${SKIP_DEV:-}" ]; then
  if [ -n "${DEV_BIN:-}" ]; then
    for harness in gla_forward_dev ssd_chunk_dev; do
      [ -x "$dev_bin/$harness" ] || { echo "DEV_BIN=$dev_bin has no $harness: run scripts/build_dev_harnesses.sh $dev_bin" >&2; exit 2; }
    done
    dev_build=
  else
    # The two harnesses build in the background while the library builds.
    scripts/build_dev_harnesses.sh "$dev_bin" > "$out/dev_build.log" 2>&1 &
    dev_build=$!
  fi
fi

if [ -z "${HARNESSES_ONLY:-}" ]; then
  # shellcheck source=scripts/gpu_build.sh
  source scripts/gpu_build.sh
  gpu_build "$out" bla_cuda_tests bla-bench bla-train bla-data || exit 1
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi

if [ -z "${SKIP_DEV:-}" ]; then
  if [ -n "$dev_build" ]; then wait "$dev_build" || { head -n 40 "$out/dev_build.log"; exit 1; }; fi
  small=(--no-bench --B 1 --H 2)
  for harness in ${HARNESSES:-gla_forward_dev ssd_chunk_dev}; do
    timeout 240 "$dev_bin/$harness" > "$out/$harness.log" 2>&1
    rc=$?
    [ "$rc" = 0 ] || failed=1
    echo "$harness rc=$rc ($(($(date +%s) - t0)) s)"
    grep -E "FAIL|skipped|SKIP|^checks:|^\[time\]" "$out/$harness.log" | cut -c1-200 | head -40
    if [ -n "${SANITIZE:-}" ]; then
      for tool in memcheck racecheck; do
        timeout "${SANITIZE_TIMEOUT:-240}" compute-sanitizer --tool "$tool" "$dev_bin/$harness" "${small[@]}" --T 150 \
          > "$out/sanitizer_${harness}_$tool.log" 2>&1
        rc=$?
        [ "$rc" = 0 ] || failed=1
        echo "compute-sanitizer $tool $harness rc=$rc"
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|FAIL" "$out/sanitizer_${harness}_$tool.log" | head -5
      done
    fi
  done
fi

[ -n "${HARNESSES_ONLY:-}" ] && exit "$failed"

if [ -z "${SKIP_TESTS:-}" ]; then
  timeout 300 "$BUILD_DIR/tests/bla_cuda_tests" \
    --gtest_filter='*GlaKernel*:*Mamba2Kernel*:*TrainStepGraph*:ModelKernelHeadLoss*:*Gatedfwa*' \
    > "$out/cuda_tests.log" 2>&1
  echo "cuda tests rc=$? ($(($(date +%s) - t0)) s)"
  grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure" "$out/cuda_tests.log" | head -30
fi

if [ -z "${SKIP_BENCH:-}" ]; then
  shape=(--batch 4 --seq 8192 --heads 16 --dtype bf16 --reps 20 --sets 2 --warmup 5)
  IFS=, read -r -a bench_ops <<< "${BENCH_OPS:-gla,gsa --slots 64,ssd,ssd --kernel-backward}"
  for dim in ${BENCH_DIMS:-64 128}; do
    for op in "${bench_ops[@]}"; do
      for k in ${BENCH_KERNELS:-1 0}; do
        [ "$k" = 0 ] && [ "$op" = "ssd --kernel-backward" ] && continue
        # shellcheck disable=SC2086
        BLA_KERNELS=$k timeout 120 "$BUILD_DIR/src/bla-bench" --op $op --dim "$dim" "${shape[@]}" --no-reference \
          --no-ceilings >> "$out/bla_bench.log" 2>&1
        echo "bla-bench --op $op --dim $dim BLA_KERNELS=$k: rc=$?"
      done
    done
  done
  # GatedFWA's op (its gate's running sums, ops/scan.h) beside SWA's kernel at the same window (not with BENCH_OPS).
  for op in $([ -z "${BENCH_OPS:-}" ] && echo swa gatedfwa); do
    timeout 120 "$BUILD_DIR/src/bla-bench" --op "$op" --window 512 --dim 64 "${shape[@]}" --no-reference --no-ceilings \
      >> "$out/bla_bench.log" 2>&1
    echo "bla-bench --op $op --window 512 --dim 64: rc=$?"
  done
  grep -E "^bla-bench:|^(gla|gsa|ssd|gatedfwa)-op|^kernel " "$out/bla_bench.log"
fi

ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -n "${NCU:-}" ] && [ -n "$ncu" ]; then
  for op in gla "gsa --slots 64"; do
    name=${op%% *}
    # shellcheck disable=SC2086
    timeout 240 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --log-file "$out/ncu_$name.csv" \
      "$BUILD_DIR/src/bla-bench" --op $op --dim 64 --batch 4 --seq 8192 --heads 16 --dtype bf16 --pass fwdbwd \
      --warmup 1 --reps 1 --sets 1 --no-ceilings --no-reference > /dev/null 2>&1
    echo "ncu --op $name rc=$? ($(($(date +%s) - t0)) s)"
    python3 scripts/ncu_kernel_times.py "$out/ncu_$name.csv" --per 2 | head -30 | tee "$out/ncu_$name.txt"
  done
fi
if [ -n "${NCU_DETAIL:-}" ] && [ -n "$ncu" ]; then
  # What limits one launch of each named kernel: throughput against the peaks, occupancy, where warps
  # stall, the memory traffic (ncu's sections, as text).
  for kernel in $NCU_DETAIL; do
    op=gla
    case $kernel in bla_*) op="bla --slots 64 --window 512" ;; esac
    # shellcheck disable=SC2086
    timeout 240 "$ncu" --kernel-name "regex:$kernel" --launch-count 1 --section SpeedOfLight --section Occupancy \
      --section LaunchStats --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
      "$BUILD_DIR/src/bla-bench" --op $op --dim 64 --batch 4 --seq 8192 --heads 16 --dtype bf16 --pass fwdbwd \
      --warmup 1 --reps 1 --sets 1 --no-ceilings --no-reference > "$out/ncu_detail_$kernel.txt" 2>&1
    echo "ncu detail $kernel rc=$? ($(($(date +%s) - t0)) s)"
  done
fi

if [ -z "${SKIP_125M:-}" ]; then
  # shellcheck source=scripts/bench_corpus.sh
  source scripts/bench_corpus.sh
  bench_corpus "$out"
  lm=configs/bench/lm_125m.yaml
  data=data.path=$BUILD_DIR/data/bench_text
  # Every mixer (or those of MIXERS_125M) with every part on, then GLA and GSA with BLA_KERNELS=0 (their LibTorch forms).
  runs=()
  for mixer in ${MIXERS_125M:-attention swa bla gatedfwa mamba2 gla gsa}; do
    case $mixer in
      attention) runs+=("$lm:none:$data") ;;
      swa) runs+=("$lm:none:$data,model.mixer=swa,model.mixers.swa.window=512") ;;
      bla) runs+=("$lm:none:$data,model.mixer=bla,model.mixers.bla.window=512,model.mixers.bla.slots=64") ;;
      gatedfwa) runs+=("$lm:none:$data,model.mixer=gatedfwa,model.mixers.gatedfwa.window=512") ;;
      *) runs+=("$lm:none:$data,model.mixer=$mixer") ;;
    esac
  done
  PYTHONUNBUFFERED=1 timeout 330 python3 scripts/bench_train.py --build "$BUILD_DIR" --variants all \
    --json "$out/bench_125m.json" "${runs[@]}" > "$out/bench_125m.txt" 2>&1
  echo "125M rc=$? ($(($(date +%s) - t0)) s)"
  if [ -z "${SKIP_125M_OFF:-}" ]; then
    PYTHONUNBUFFERED=1 timeout 200 python3 scripts/bench_train.py --build "$BUILD_DIR" --variants no_kernels \
      --json "$out/bench_125m_off.json" "$lm:none:$data,model.mixer=gla" "$lm:none:$data,model.mixer=gsa" \
      >> "$out/bench_125m.txt" 2>&1
    echo "125M, kernels off, rc=$? ($(($(date +%s) - t0)) s)"
  fi
  cat "$out/bench_125m.txt"
fi
