#!/usr/bin/env bash
# On a CUDA machine: a kernel variant behind a compile flag (kernels/dev/README.md,
# "Variants behind a compile flag") against the default build, in one call. Both
# builds run side by side ($BUILD_DIR, default build-gpu, and $VAR_DIR, default
# build-var, with the variant's macros); then the variant build's CUDA tests, bla-bench default and
# variant alternately, and, with NCU, Nsight Compute's full set for the named
# kernels in both builds. Every step is cut to what is left of LIMIT, so the
# call returns its logs. Output in ${OUT:-gpu-variant}/:
#   build.log, build_var.log, tests_var.log, bench.txt (the raw bla-bench output),
#   bench.md (median ms per build and round, variant / default), ncu_<build>.csv.
#
#   VARIANT=-DMY_VARIANT,MY_OTHER_VARIANT scripts/gpu_variant_ab.sh
#   TESTS='*BlaKernel*'            # the variant build's bla_cuda_tests filter (the default)
#   ROUNDS=2                       # default / variant alternations (the default)
#   BENCH='--op bla --window 512 --slots 64;--op bla --window 512 --slots 64 --batch 8 --seq 2048 --heads 12'
#                                  # bla-bench argument sets, ';' between (the default: BLA at
#                                  # B4 T8192 H16, the 125M model's shape and the MQAR protocol's)
#   NCU='regex:bla_chunk_(forward|backward_scores|backward_inputs)_kernel' NCU_LAUNCHES=3
#   NCU_ARGS='--op bla --slots 64 --batch 8 --seq 2048 --heads 12'   # the bla-bench run ncu watches
#   LIMIT=540                      # seconds for all of it (the default)
#   JOBS=8                         # compile jobs for each of the two builds (the default)
#   SKIP_BUILD=1                   # use the two build folders as they are (VARIANT is then only a label)
#   TARGETS='bla-bench bla_cuda_tests'   # what both builds build (the default)
#   DEFAULT_TARGETS='bla-train bla-sweep'  # what the default build builds besides, for what the same
#                                  # call does next with $BUILD_DIR (a sweep: scripts/gpu_sweep.sh)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ -n "${VARIANT:-}" ] || { echo "gpu_variant_ab.sh: set VARIANT to the variant's macros, e.g. VARIANT=-DMY_VARIANT" >&2; exit 2; }
out=${OUT:-gpu-variant}
mkdir -p "$out"
export BUILD_DIR=${BUILD_DIR:-build-gpu}
t0=$(date +%s)
end=$(( t0 + ${LIMIT:-540} ))
left() { echo $(( end - $(date +%s) )); }
# within SECONDS CMD...: CMD under a timeout of SECONDS or what is left, whichever is less.
within() {
  local t=$1 l
  shift
  l=$(left)
  [ "$l" -lt "$t" ] && t=$l
  [ "$t" -gt 5 ] || { echo "gpu_variant_ab.sh: no time left for: $*" >&2; return 124; }
  timeout "$t" "$@"
}
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }

var_dir=${VAR_DIR:-build-var}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi here)"
read -r -a targets <<< "${TARGETS:-bla-bench bla_cuda_tests}"
jobs=${JOBS:-8}
read -r -a extra <<< "${DEFAULT_TARGETS:-}"
if [ -n "${SKIP_BUILD:-}" ]; then
  echo 0 > "$out/.rc_default"; echo 0 > "$out/.rc_variant"
else
  (JOBS=$jobs within 900 scripts/build.sh "${targets[@]}" "${extra[@]}" > "$out/build.log" 2>&1
   echo $? > "$out/.rc_default") &
  (BUILD_DIR=$var_dir JOBS=$jobs CMAKE_ARGS="-DCMAKE_CUDA_FLAGS=$VARIANT" within 900 scripts/build.sh "${targets[@]}" \
     > "$out/build_var.log" 2>&1
   echo $? > "$out/.rc_variant") &
  wait
fi
rc_default=$(cat "$out/.rc_default") rc_variant=$(cat "$out/.rc_variant")
rm -f "$out/.rc_default" "$out/.rc_variant"
el "builds: default rc=$rc_default, variant ($VARIANT) rc=$rc_variant"
if [ "$rc_default" != 0 ] || [ "$rc_variant" != 0 ]; then
  grep -h -E "error" -A5 "$out/build.log" "$out/build_var.log" | head -60
  exit 1
fi

if [ -x "$var_dir/tests/bla_cuda_tests" ]; then
  within 240 "$var_dir/tests/bla_cuda_tests" --gtest_filter="${TESTS:-*BlaKernel*}" > "$out/tests_var.log" 2>&1
  el "variant tests rc=$?"
  grep -E "^\[  (PASSED|FAILED) |FAILED  \]" "$out/tests_var.log" | head -12
fi

IFS=";" read -r -a sets <<< "${BENCH:---op bla --window 512 --slots 64;--op bla --window 512 --slots 64 --batch 8 --seq 2048 --heads 12;--op bla --slots 32 --window 256 --batch 1024 --seq 256 --heads 2}"
for ((r = 1; r <= ${ROUNDS:-2}; ++r)); do
  for b in "$BUILD_DIR" "$var_dir"; do
    for s in "${sets[@]}"; do
      read -r -a args <<< "$s"
      echo "== $b round $r | $s" >> "$out/bench.txt"
      within 60 "$b/src/bla-bench" "${args[@]}" --warmup 5 --reps 20 --sets 3 --no-ceilings --no-reference \
        >> "$out/bench.txt" 2>&1
    done
  done
done
el "bench"
# bench.md: each argument set and pass, the default's and the variant's median ms in every round.
awk -v def="$BUILD_DIR" '
  /^== / { split(substr($0, 4), h, " \\| "); split(h[1], bw, " "); build = bw[1]; args = h[2]; next }
  NF >= 3 && ($2 == "fwd" || $2 == "fwd+bwd" || $2 == "bwd") && $3 ~ /^[0-9.]+$/ {
    key = args " | " $1 " " $2
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    if (build == def) d[key] = d[key] (d[key] == "" ? "" : ", ") $3
    else v[key] = v[key] (v[key] == "" ? "" : ", ") $3
    if (build == def) { ds[key] += $3; dn[key]++ } else { vs[key] += $3; vn[key]++ }
  }
  END {
    print "| bla-bench arguments | kernel, pass | default ms | variant ms | variant / default |"
    print "| --- | --- | --- | --- | --- |"
    for (i = 1; i <= n; ++i) {
      k = order[i]; split(k, p, " \\| ")
      ratio = (dn[k] && vn[k] && ds[k] > 0) ? sprintf("%.3f", (vs[k] / vn[k]) / (ds[k] / dn[k])) : "n/a"
      print "| " p[1] " | " p[2] " | " d[k] " | " v[k] " | " ratio " |"
    }
  }' "$out/bench.txt" > "$out/bench.md"
cat "$out/bench.md"

if [ -n "${NCU:-}" ]; then
  ncu=$(command -v ncu)
  for c in /opt/nvidia/nsight-compute/*/ncu; do [ -z "$ncu" ] && [ -x "$c" ] && ncu=$c; done
  if [ -z "$ncu" ]; then
    echo "gpu_variant_ab.sh: no ncu on this machine; NCU skipped"
  else
    read -r -a nargs <<< "${NCU_ARGS:---op bla --slots 64 --batch 8 --seq 2048 --heads 12}"
    for b in "$BUILD_DIR" "$var_dir"; do
      within 200 "$ncu" --set full -k "$NCU" --launch-count "${NCU_LAUNCHES:-1}" --csv --page details \
        "$b/src/bla-bench" "${nargs[@]}" --pass fwdbwd --warmup 0 --reps 1 --sets 1 --no-ceilings --no-reference \
        > "$out/ncu_$(basename "$b").csv" 2> "$out/ncu_$(basename "$b").err"
      el "ncu $b rc=$?"
    done
  fi
fi
el "done"
