#!/usr/bin/env bash
# On a CUDA machine: build bla-train and profile the training step of each
# run named (docs/performance.md, "Profiling a run"); each profile.txt is
# copied to ${OUT:-gpu-profile}/NAME.txt, each run's log to NAME.log.
#   scripts/gpu_profile_step.sh NAME=CONFIG[,KEY=VALUE...] ...
#   scripts/gpu_profile_step.sh zoology=configs/bench/mqar_zoology.yaml \
#       zoology_eager=configs/bench/mqar_zoology.yaml,train.cuda_graph=off
# STEPS (default 40) steps are run, PROFILE_STEPS (default 5) profiled after
# step 10 (after the CUDA graph's capture). SKIP_BUILD=1 uses $BUILD_DIR as is
# (on a CPU, with run.device=cpu in a run's keys, it lists host operators only).
# Exit status 1 when a run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-profile}
mkdir -p "$out"
source scripts/gpu_build.sh
if [ -z "${SKIP_BUILD:-}" ]; then
  gpu_build "$out" bla-train bla-data || exit 1
fi
# The synthetic corpus of configs/bench/lm_125m.yaml, where a run reads text.
for spec in "$@"; do
  config=${spec#*=}
  if grep -Eq '^[[:space:]]*task:[[:space:]]*text' "${config%%,*}" 2>/dev/null; then
    source scripts/bench_corpus.sh
    bench_corpus "$out" || exit 1
    break
  fi
done
status=0
for spec in "$@"; do
  name=${spec%%=*}
  rest=${spec#*=}
  IFS=, read -r -a parts <<< "$rest"
  sets=()
  for kv in "${parts[@]:1}"; do sets+=(--set "$kv"); done
  dir=/tmp/profile_$name
  rm -rf "$dir"
  if timeout "${RUN_TIMEOUT:-240}" "$BUILD_DIR/src/bla-train" "${parts[0]}" --out "$dir" \
      --set "train.steps=${STEPS:-40}" --set "train.profile_steps=${PROFILE_STEPS:-5}" \
      "${sets[@]}" > "$out/$name.log" 2>&1 &&
      cp "$dir/profile.txt" "$out/$name.txt"; then
    echo "== $name"
    head -n "${SHOW:-28}" "$out/$name.txt"
  else
    echo "== $name: failed (rc $?), last lines of $out/$name.log:"
    tail -n 5 "$out/$name.log"
    status=1
  fi
done
exit $status
