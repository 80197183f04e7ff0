#!/usr/bin/env bash
# On a CUDA machine: the MQAR protocol's ensemble step (docs/performance.md,
# "The MQAR protocol's step"). Builds bla-train, then times MEMBERS (12)
# members of configs/bench/mqar_protocol.yaml trained as one ensemble at each
# point of POINTS (default: BLA with 32 slots over 256 tokens, SWA with window
# 64), STEPS steps each, through scripts/bench_ensemble.py.
#   BASE=DIR   another source tree (`git archive` of the commit before) is
#              built beside this one and timed in the same call, point by
#              point, alternating with this one (its bla-train, this tree's
#              config and scripts). Archive the whole tree (`git archive
#              COMMIT | gzip > .devbin/base.tgz`, unpacked into DIR there): a
#              tree without benchmarks/ or tests/ stops at CMake
#   NCU=1      ncu times every kernel of a few eager steps of each point
#              (this tree's bla-train), summed per step by
#              scripts/ncu_kernel_times.py --steps-by
#   TESTS=1    builds bla_cuda_tests and runs TEST_FILTER (default: ensembles,
#              the train step, the model kernels)
# Logs go to ${OUT:-gpu-mqar-step}/logs/, and in one archive, logs.tgz, beside
# summary.txt (the device tool brings back at most 8 files).
#   BASE=/tmp/base TESTS=1 NCU=1 scripts/gpu_mqar_step.sh
set -uo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
top=$(realpath -m "${OUT:-gpu-mqar-step}")
out=$top/logs
mkdir -p "$out"
trap 'tar czf "$top/logs.tgz" -C "$top" logs && rm -rf "$out"' EXIT
members=${MEMBERS:-12}
steps=${STEPS:-300}
points=${POINTS:-bla32 swa64}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$out/gpu.txt"
{ command -v ncu nsys; ncu --version 2>&1 | tail -1; git log -1 --format=%H 2>/dev/null; } >> "$out/gpu.txt" 2>&1

# Builds: this tree (bla-train, and bla_cuda_tests with TESTS=1) and BASE's bla-train, side by side.
jobs=$(nproc)
targets=(bla-train)
[ -n "${TESTS:-}" ] && targets+=(bla_cuda_tests)
t0=$(date +%s)
if [ -n "${BASE:-}" ]; then
  (cd "$BASE" && BUILD_DIR=build-gpu JOBS=$((jobs / 2)) scripts/build.sh bla-train) > "$out/build_base.log" 2>&1 &
  base_pid=$!
  jobs=$((jobs - jobs / 2))
fi
BUILD_DIR=build-gpu JOBS=$jobs scripts/build.sh "${targets[@]}" > "$out/build.log" 2>&1
rc=$?
if [ -n "${BASE:-}" ]; then
  wait "$base_pid"
  base_rc=$?
  echo "build of BASE: rc=$base_rc"
  [ "$base_rc" = 0 ] || { grep -E "error" -A5 "$out/build_base.log" | head -40; BASE=""; }
fi
echo "build: rc=$rc after $(( $(date +%s) - t0 )) s"
[ "$rc" = 0 ] || { grep -E "error" -A5 "$out/build.log" | head -60; exit 1; }

if [ -n "${TESTS:-}" ]; then
  t0=$(date +%s)
  timeout "${TEST_LIMIT:-240}" build-gpu/tests/bla_cuda_tests \
    --gtest_filter="${TEST_FILTER:-*EnsembleOnGpu*:*TrainStep*:*ModelKernel*}" > "$out/tests.log" 2>&1
  echo "cuda tests rc=$? after $(( $(date +%s) - t0 )) s"
  cp "$out/tests.log" "$top/"
  grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure|Expected|Which is" "$out/tests.log" | head -40
fi

point_sets() {  # the --set arguments of a point
  case $1 in
    bla*_val) echo "--set model.mixers.bla.slots=${1//[!0-9]/} --set train.validation_every=50" ;;
    bla*) echo "--set model.mixers.bla.slots=${1#bla}" ;;
    swa*) echo "--set model.mixer=swa --set model.mixers.swa.window=${1#swa}" ;;
    *) echo "unknown point $1" >&2; return 1 ;;
  esac
}

bench() {  # label build point
  local sets
  sets=$(point_sets "$3") || return
  # shellcheck disable=SC2086
  PYTHONUNBUFFERED=1 timeout 300 python3 scripts/bench_ensemble.py --build "$2" --members "$members" --modes ensemble \
    --json "$out/bench_${1}_$3.json" configs/bench/mqar_protocol.yaml --set train.steps="$steps" $sets \
    > "$out/bench_${1}_$3.txt" 2>&1
  echo "$1 $3: $(grep -E '^ensemble' "$out/bench_${1}_$3.txt")"
}

for point in $points; do
  [ -n "${BASE:-}" ] && bench base "$BASE/build-gpu" "$point"
  bench this build-gpu "$point"
done

if [ -n "${NCU:-}" ]; then
  seeds="[$(seq -s ', ' 0 $((members - 1)))]"
  for point in ${NCU_POINTS:-$points}; do
    sets=$(point_sets "$point") || continue
    if [ "$SECONDS" -gt "${NCU_DEADLINE:-100000}" ]; then echo "ncu $point: skipped, $SECONDS s gone"; continue; fi
    t0=$(date +%s)
    # shellcheck disable=SC2086
    timeout -s INT -k 20 "${NCU_LIMIT:-200}" ncu --clock-control none --metrics gpu__time_duration.sum --csv \
      --log-file "$out/ncu_$point.csv" build-gpu/src/bla-train configs/bench/mqar_protocol.yaml \
      --out "/tmp/ncu-$point" --overwrite --set "run.seed=$seeds" --set train.steps=4 --set train.cuda_graph=off \
      --set train.log_every=5 $sets > "$out/ncu_$point.log" 2>&1
    echo "ncu $point: rc=$? after $(( $(date +%s) - t0 )) s"
    python3 scripts/ncu_kernel_times.py "$out/ncu_$point.csv" --steps-by 'Adam' --skip-steps 1 \
      > "$out/kernels_$point.txt" 2>&1
    head -40 "$out/kernels_$point.txt"
    cp "$out/kernels_$point.txt" "$top/"
    gzip -f "$out/ncu_$point.csv"
  done
fi

python3 - "$out" <<'EOF' | tee "$top/summary.txt"
import glob, json, os, sys
print(f"{'run':28s} {'agg steps/s':>11s} {'ms/member-step':>15s} {'peak GiB':>9s}")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "bench_*.json"))):
    for r in json.load(open(path)):
        name = os.path.basename(path)[6:-5]
        if "error" in r:
            print(f"{name:28s} error")
            continue
        agg = r["aggregate_steps_per_s"]
        print(f"{name:28s} {agg:11.2f} {1000 / agg:15.3f} {r['peak_mem_gib']:9.2f}")
EOF
