#!/usr/bin/env bash
# On a CUDA machine: build bla-train and bla-sweep, run a sweep file for at
# most LIMIT seconds (bla-sweep groups its points into ensembles; a stop
# leaves checkpoints that a later call resumes), then copy what the docs need
# (results.csv, the logs, each point's summary, metrics and config in
# runs.tgz) and the newest checkpoints of a few unfinished runs to
# ${OUT:-gpu-sweep}/. Only bla-sweep hears the
# time limit, and passes it on once: runs stop after a checkpoint. Inside a
# device call, leave LIMIT about 60 s short of the call's own limit: the
# runs' stop, the archive and the tables come after it, and a call cut
# before the archive brings back no runs.tgz.
#   SWEEP=configs/sweeps/mqar_pilot.yaml GPUS=0,0 LIMIT=500 scripts/gpu_sweep.sh
#   ONLY=bla,swa                      # bla-sweep --only
#   ENSEMBLE=4                        # bla-sweep --ensemble (members per process; default auto)
#   FINISH_BY=480                     # bla-sweep --finish-by: start no process that the longest so far
#                                     # says would not end by then (a session's last call: nothing is
#                                     # cut part-way, so no checkpoint has to come back)
#   EXPECT=400                        # bla-sweep --expect (with FINISH_BY): a process's expected seconds
#                                     # until a longer one has run, so that not even the first starts
#                                     # when it would not end in time (resumed ones alike: for a call
#                                     # whose first wave starts new points)
#   RESTORE="a/runs.tgz a/ckpt_*.tgz" # an earlier call's archives, unpacked into the sweep's folder first
#                                     # (runs.tgz first): the points it finished are skipped, those whose
#                                     # checkpoint came back resume from it, the others start again
#   CHECKPOINTS=2                     # unfinished runs whose newest checkpoint comes back (default 2),
#                                     # one ckpt_<run>.tgz each (scripts/sweep_archive.sh): with the
#                                     # five other files that is 7 of a device call's 8, one left for
#                                     # the caller; a member of the MQAR protocol's model is 13 MB, so
#                                     # an ensemble of 2 (ENSEMBLE=2) comes back whole
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-gpu-sweep}
source scripts/gpu_build.sh
gpu_build "$out" bla-train bla-sweep || exit 1
sweep=${SWEEP:-configs/sweeps/mqar_pilot.yaml}
name=$(basename "$sweep" .yaml)
dir=${SWEEP_DIR:-$BUILD_DIR/sweeps/$name}
mkdir -p "$dir"
for archive in ${RESTORE:-}; do
  tar xzf "$archive" -C "$dir" || { echo "gpu_sweep.sh: cannot unpack RESTORE archive $archive" >&2; exit 1; }
done
t0=$(date +%s)
timeout --foreground -s TERM -k 60 "${LIMIT:-500}" "$BUILD_DIR/src/bla-sweep" "$sweep" --out "$dir" --gpus "${GPUS:-0}" \
  --bla-train "$BUILD_DIR/src/bla-train" ${ONLY:+--only "$ONLY"} ${ENSEMBLE:+--ensemble "$ENSEMBLE"} \
  ${FINISH_BY:+--finish-by "$FINISH_BY"} ${EXPECT:+--expect "$EXPECT"} > "$out/sweep.log" 2>&1
echo "bla-sweep rc=$? after $(( $(date +%s) - t0 )) s"
grep -E "points:|did not fit|FAILED|finished in|interrupted in|starting nothing more|stopped for" "$out/sweep.log" | head -20
mkdir -p "$out/$name"
cp "$dir/results.csv" "$out/$name/" 2>/dev/null
scripts/sweep_archive.sh "$dir" "$out/$name" "${CHECKPOINTS:-2}"
python3 scripts/plot_sweep.py "$dir/results.csv" --no-plot > "$out/$name/tables.md" 2>&1 && cat "$out/$name/tables.md"
