#!/usr/bin/env bash
# On a CUDA machine: build, test and time the fused BLA kernel
# (docs/performance.md, "The fused BLA kernel"). Logs go to ${OUT:-gpu-bla}/.
#   scripts/gpu_bla_kernel.sh            # tests, sanitizers, bla-bench, 125M throughput
#   SKIP_125M=1 scripts/gpu_bla_kernel.sh
#   BASELINES=1 scripts/gpu_bla_kernel.sh   # also 125M attention and SWA-512
#   M125_STEPS=160 ...                       # longer 125M runs (default 40)
#   SKIP_TESTS=1 / SKIP_BENCH=1              # leave out the tests and sanitizers / bla-bench
# With Nsight Compute (ncu) there, it also times every kernel of one
# forward+backward at the benchmark shape (SKIP_PROFILE=1 skips it;
# NCU_SECTIONS=1 adds occupancy, throughput and stall sections, NCU_STALLS=1
# the cycles each kernel's warps stall per instruction, by reason).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-bla}
mkdir -p "$out"
export BUILD_DIR=${BUILD_DIR:-build-gpu}
B=$BUILD_DIR/src
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
t0=$(date +%s)
{ time scripts/build.sh bla_cuda_tests bla-bench bla-train; } > "$out/build.log" 2>&1 || { grep -E "error" -A5 "$out/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"

tests=$BUILD_DIR/tests/bla_cuda_tests
if [ -z "${SKIP_TESTS:-}" ]; then
  timeout 300 "$tests" --gtest_filter='*BlaKernel*:*odd_seq*:*gate_bias*' > "$out/tests.log" 2>&1
  echo "cuda tests rc=$?"; grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure" "$out/tests.log" | head -20
  # Worst relative error per BLA check and dtype, over every shape.
  awk '/^\[ RUN/ { mode = "" } /^\[ RUN .*BlaKernel\./ { n = split($NF, p, "_"); mode = p[n] }
       / rel err / && mode != "" { k = mode " " $1; if (!(k in worst) || $4 + 0 > worst[k] + 0) worst[k] = $4 }
       END { for (k in worst) print "worst " k " " worst[k] }' "$out/tests.log" | sort

  small='Shapes/BlaKernel.RawPasses*/odd_seq_f32:Shapes/BlaKernel.RawPasses*/slots_100_padded_bf16:Shapes/BlaKernel.OpMatches*/odd_seq_bf16:Shapes/BlaKernel.RawPasses*/d128_slots_100_padded_bf16'
  timeout 200 compute-sanitizer --tool memcheck "$tests" --gtest_filter="$small" > "$out/sanitizer.log" 2>&1
  echo "memcheck rc=$?"
  timeout 200 compute-sanitizer --tool racecheck "$tests" --gtest_filter='Shapes/BlaKernel.RawPasses*/odd_seq_f32:Shapes/BlaKernel.OpMatches*/odd_seq_bf16' \
    >> "$out/sanitizer.log" 2>&1
  echo "racecheck rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED" "$out/sanitizer.log" | head
fi

ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -z "${SKIP_PROFILE:-}" ] && [ -n "$ncu" ]; then
  # bla-bench runs warm-up + one rep: two forward+backward iterations.
  timeout 200 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --log-file "$out/ncu_bla.csv" \
    "$B/bla-bench" --op bla --window 512 --slots 64 --pass fwdbwd --warmup 1 --reps 1 --sets 1 --no-ceilings \
    --no-reference > /dev/null 2>&1
  echo "ncu rc=$?"; python3 scripts/ncu_kernel_times.py "$out/ncu_bla.csv" --per 2 | head -30
  # Where each BLA kernel's warps wait, for the first forward+backward (NCU_SECTIONS=1).
  [ -n "${NCU_SECTIONS:-}" ] && timeout 300 "$ncu" --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats \
    --section MemoryWorkloadAnalysis -k regex:bla_ --launch-count 5 \
    "$B/bla-bench" --op bla --window 512 --slots 64 --pass fwdbwd --warmup 1 --reps 1 --sets 1 --no-ceilings \
    --no-reference > "$out/ncu_bla_sections.txt" 2>&1
  [ -n "${NCU_SECTIONS:-}" ] && grep -E "bla_[a-z_]*kernel|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Warp Cycles Per Issued|Stall|stall" \
    "$out/ncu_bla_sections.txt" | cut -c1-160 | head -80
  if [ -n "${NCU_STALLS:-}" ]; then  # cycles stalled per issued instruction, by reason
    reasons=(barrier branch_resolving dispatch_stall drain imc_miss lg_throttle long_scoreboard math_pipe_throttle
             membar mio_throttle misc no_instruction not_selected selected short_scoreboard sleeping tex_throttle wait)
    metrics=$(printf 'smsp__average_warps_issue_stalled_%s_per_issue_active.ratio,' "${reasons[@]}")
    timeout 300 "$ncu" --clock-control none -k regex:bla_ --launch-count 5 --metrics "${metrics%,}" --csv \
      --log-file "$out/ncu_stalls.csv" "$B/bla-bench" --op bla --window 512 --slots 64 --pass fwdbwd --warmup 1 \
      --reps 1 --sets 1 --no-ceilings --no-reference > /dev/null 2>&1
    echo "ncu stalls rc=$?"; python3 scripts/ncu_kernel_times.py "$out/ncu_stalls.csv" --stalls
  fi
fi

if [ -z "${SKIP_BENCH:-}" ]; then
  bench() { echo "== $*"; timeout 120 "$B/bla-bench" "$@" --warmup 5 --reps 20 --sets 3 2>&1 | grep -vE "^\s*$"; }
  {
    bench --op bla --window 512 --slots 64
    bench --op bla-chunk --window 512 --slots 64 --no-ceilings --no-reference
    bench --op bla --window 512 --slots 64 --dtype fp32 --no-ceilings
    bench --op bla --window 2048 --slots 128 --no-ceilings --no-reference
    bench --op bla --window 512 --slots 64 --heads 8 --dim 128 --no-ceilings --no-reference
    bench --op swa --window 512 --no-ceilings --no-reference
    bench --op bla --batch 8 --seq 2048 --heads 12 --window 512 --slots 64 --no-ceilings
  } > "$out/bench.log" 2>&1
  grep -E "^==|bla-kernel|bla-libtorch|kernel|ceilings|bla-bench:" "$out/bench.log"
  echo "bench done at $(( $(date +%s) - t0 )) s"
fi

if [ -z "${SKIP_125M:-}" ]; then
  # BLA-64/512 with and without the kernels; BASELINES=1 adds attention and
  # SWA-512 (kernels on) in the same run, for the "vs attention" column.
  steps=${M125_STEPS:-40}
  base=(configs/dist_125m.yaml --set train.steps=$steps --set train.log_every=$(( steps / 4 )))
  bla=(--set model.mixer=bla --set model.mixers.bla.window=512 --set model.mixers.bla.slots=64)
  swa=(--set model.mixer=swa --set model.mixers.swa.window=512)
  train() {  # name kernels args...
    local name=$1 k=$2; shift 2
    BLA_KERNELS=$k timeout 300 "$B/bla-train" "${base[@]}" "$@" --out "$out/m125_$name" > "$out/m125_$name.log" 2>&1
    echo "125m $name exit $?"
  }
  runs=()
  if [ -n "${BASELINES:-}" ]; then
    train attention 1; train swa512_k1 1 "${swa[@]}"
    runs+=("$out/m125_attention:1" "$out/m125_swa512_k1:1")
  fi
  train bla64_w512_k1 1 "${bla[@]}"; train bla64_w512_k0 0 "${bla[@]}"
  runs+=("$out/m125_bla64_w512_k1:1" "$out/m125_bla64_w512_k0:1")
  python3 scripts/measure_125m.py "${runs[@]}"
fi
echo "total: $(( $(date +%s) - t0 )) s"
