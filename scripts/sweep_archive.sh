#!/usr/bin/env bash
# What a sweep folder must keep when the machine it ran on goes away:
#   scripts/sweep_archive.sh SWEEP_DIR DEST [CHECKPOINTS]
# writes DEST/runs.tgz (every run's logs, summary.json, metrics.jsonl,
# config.yaml and sweep_point.json: what results.csv and the docs are made
# from, no checkpoints) and, for at most CHECKPOINTS (default 0) runs that
# have not finished (no summary.json), DEST/ckpt_<run>.tgz holding the run's
# newest checkpoint, those with the most steps first. Unpacked into a fresh
# sweep folder (runs.tgz first; gpu_sweep.sh's RESTORE), they let bla-sweep
# skip the finished points and resume the others where they stopped.
# A checkpoint archive larger than CKPT_MAX_MB (default 16, what a device
# call brings back per file) is not written; a line says so.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/sweep_archive.sh SWEEP_DIR DEST [CHECKPOINTS]" >&2; exit 2; }
dir=$1
dest=$2
keep=${3:-0}
max_mb=${CKPT_MAX_MB:-16}
[ -d "$dir/runs" ] || { echo "sweep_archive.sh: $dir has no runs/ folder: not a sweep folder (bla-sweep --out)" >&2; exit 2; }
mkdir -p "$dest" || exit 1
dest=$(cd "$dest" && pwd)

(cd "$dir" && find logs runs \( -name '*.log' -o -name summary.json -o -name metrics.jsonl -o -name config.yaml \
  -o -name sweep_point.json \) -print 2>/dev/null | LC_ALL=C sort | tar czf "$dest/runs.tgz" -T -) ||
  { echo "sweep_archive.sh: cannot write $dest/runs.tgz" >&2; exit 1; }

[ "$keep" -gt 0 ] 2>/dev/null || exit 0
# Unfinished runs with a checkpoint: "step run_dir/checkpoints/newest", most steps first.
candidates=$(cd "$dir" && for run in runs/*/; do
  run=${run%/}
  [ -f "$run/summary.json" ] && continue
  newest=$(find "$run/checkpoints" -maxdepth 1 -name "step-*.ckpt" 2>/dev/null | LC_ALL=C sort | tail -1)
  [ -n "$newest" ] || continue
  step=${newest##*/step-}
  echo "$((10#${step%.ckpt})) $newest"
done | LC_ALL=C sort -k1,1nr -k2,2)
written=0
while read -r step path; do
  [ -n "$path" ] || continue
  [ "$written" -lt "$keep" ] || { echo "sweep_archive.sh: not kept (CHECKPOINTS=$keep reached): $path"; continue; }
  run=$(basename "$(dirname "$(dirname "$path")")")
  archive="$dest/ckpt_$run.tgz"
  (cd "$dir" && tar czf "$archive" "$path") || { echo "sweep_archive.sh: cannot write $archive" >&2; exit 1; }
  size=$(( ($(stat -c %s "$archive") + 1048575) / 1048576 ))
  if [ "$size" -gt "$max_mb" ]; then
    rm -f "$archive"
    echo "sweep_archive.sh: not kept ($size MiB > CKPT_MAX_MB=$max_mb): $path"
    continue
  fi
  written=$((written + 1))
  echo "sweep_archive.sh: kept $path (step $step, $size MiB) in $(basename "$archive")"
done <<< "$candidates"
