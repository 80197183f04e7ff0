#!/usr/bin/env bash
# On a CUDA machine: build the kernel development programs (kernels/dev,
# README.md there) and run each: every SWA variant and the gated recurrence's
# kernels checked against the float64 reference, then timed; then bla-bench
# once per op, briefly, as a smoke test. Logs go to ${OUT:-gpu-kernel-dev}/.
#   scripts/gpu_kernel_dev.sh               # CMake build of bla-kernel-dev and bla-bench in $BUILD_DIR (build-gpu)
#   NVCC_ONLY=1 scripts/gpu_kernel_dev.sh   # the programs with nvcc alone (no LibTorch, no bla-bench); ARCH=sm_90
#   DEV_ARGS="--dim 64 --reps 50" ...       # options for both SWA programs (see --help)
#   GLA_ARGS="--no-bench --T 130" ...       # options for gla_forward_dev (its header comment)
#   SANITIZE=1 ...                          # also compute-sanitizer memcheck and racecheck over the checks
#   SKIP_BENCH=1 ...                        # no bla-bench
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-gpu-kernel-dev}
mkdir -p "$out"
t0=$(date +%s)

if [ -n "${NVCC_ONLY:-}" ]; then
  bin=${BIN_DIR:-build-kernel-dev}
  mkdir -p "$bin"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  # The nvcc options of kernels/CMakeLists.txt (BLA_CUDA_OPTIONS).
  flags=(-std=c++17 -O3 -arch="${ARCH:-sm_90}" --use_fast_math -lineinfo --expt-relaxed-constexpr -Ikernels)
  {
    nvcc "${flags[@]}" kernels/dev/swa_forward_dev.cu kernels/swa_forward.cu -o "$bin/swa_forward_dev" &&
      nvcc "${flags[@]}" kernels/dev/swa_backward_dev.cu kernels/swa_backward.cu kernels/swa_forward.cu \
        -o "$bin/swa_backward_dev" &&
      nvcc "${flags[@]}" kernels/dev/gla_forward_dev.cu kernels/gla_kernels.cu -o "$bin/gla_forward_dev"
  } > "$out/build.log" 2>&1 || { head -n 60 "$out/build.log"; exit 1; }
else
  # shellcheck source=scripts/gpu_build.sh
  source scripts/gpu_build.sh
  targets=(bla-kernel-dev)
  [ -z "${SKIP_BENCH:-}" ] && targets+=(bla-bench)
  gpu_build "$out" "${targets[@]}" || exit 1
  bin=$BUILD_DIR/kernels/dev
fi
echo "build: $(( $(date +%s) - t0 )) s"

status=0
for program in swa_forward_dev swa_backward_dev gla_forward_dev; do
  args=${DEV_ARGS:-}
  [ "$program" = gla_forward_dev ] && args=${GLA_ARGS:-}  # its own options (its header comment)
  # shellcheck disable=SC2086  # a list of options
  timeout 600 "$bin/$program" $args > "$out/$program.log" 2>&1
  rc=$?
  echo "== $program rc=$rc"
  cat "$out/$program.log"
  [ "$rc" -eq 0 ] || status=1
done

if [ -n "${SANITIZE:-}" ]; then
  for tool in memcheck racecheck; do
    for program in swa_forward_dev swa_backward_dev gla_forward_dev; do
      args="--no-time ${DEV_ARGS:-}"
      [ "$program" = gla_forward_dev ] && args="--no-bench --B 1 --H 2 --T 130"  # a small padded case
      # shellcheck disable=SC2086
      timeout 600 compute-sanitizer --tool "$tool" "$bin/$program" $args \
        > "$out/sanitizer_${tool}_$program.log" 2>&1
      rc=$?
      echo "== compute-sanitizer $tool $program rc=$rc"
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|FAIL" "$out/sanitizer_${tool}_$program.log" | head
      [ "$rc" -eq 0 ] || status=1
    done
  done
fi

if [ -z "${NVCC_ONLY:-}${SKIP_BENCH:-}" ]; then
  # Each op bla-bench times, with few repetitions: that it runs, not what it measures.
  bench() {
    echo "== bla-bench $*"
    timeout 120 "$BUILD_DIR/src/bla-bench" "$@" --warmup 2 --reps 5 --sets 2 --no-ceilings 2>&1
    local rc=$?
    echo "rc=$rc"
    [ "$rc" -eq 0 ] || status=1
  }
  {
    bench --op swa --window 512
    bench --op swa --window 512 --bias
    bench --op swa --window 512 --heads 8 --dim 128 --pass fwd --json
    bench --op attention --seq 4096
    bench --op bla --window 512 --slots 64
    bench --op bla-chunk --window 512 --slots 64
  } > "$out/bla_bench.log" 2>&1
  cat "$out/bla_bench.log"
fi
echo "done at $(( $(date +%s) - t0 )) s, status $status"
exit "$status"
