#!/usr/bin/env bash
# On a CUDA machine, in one device call: the MQAR protocol's sweep (configs/sweeps/mqar.yaml) and beside it,
# on the same GPU, the RegBench protocol's (configs/sweeps/regbench.yaml; its small models leave the GPU mostly
# idle), each for the rest of the call, both through scripts/gpu_sweep.sh. A fresh machine first unpacks the
# newest archive of finished runs committed for each (docs/data/mqar_protocol/full/callN_runs.tgz,
# docs/data/regbench_protocol/callN_runs.tgz) and the checkpoint archives (ckpt_*.tgz, from an earlier call's
# CHECKPOINTS) in CHECKPOINT_DIR (MQAR) and RB_CHECKPOINT_DIR (RegBench), if given; a warm machine keeps
# its sweep folders and unpacks nothing (docs/results.md, "MQAR: the protocol").
#   CALL_LIMIT=560 scripts/gpu_protocol.sh               # both sweeps until 25 s before the call's limit
#   SKIP_RB=1 CALL_LIMIT=560 scripts/gpu_protocol.sh     # MQAR alone
#   SKIP_MQAR=1 CALL_LIMIT=580 scripts/gpu_protocol.sh   # RegBench alone: about 3x as fast as beside MQAR
#                                                        # (8 layers' ensemble: 3m14s alone, ~9.3 min beside)
#   BUILD_MORE="bla_cuda_tests bla-data" BEFORE="bash check.sh" SKIP_RB=1 scripts/gpu_protocol.sh
#                        # more targets built, and a command run after the build and before the sweeps (its output
#                        # in before.log, its exit status printed; the sweeps get what time is left)
# CALL_LIMIT counts from this script's start (default 560; the build comes out of it). ONLY and RB_ONLY pick each
# sweep's groups; GPUS (default 0,0: two MQAR processes share the one GPU), ENSEMBLE (4) and CHECKPOINTS (3:
# unfinished MQAR runs whose newest checkpoint comes back) are gpu_sweep.sh's. Both sweeps run bla-sweep
# --finish-by, so no process starts that the ones so far say cannot end in time; a group's first has no such
# measure unless EXPECT (MQAR) or RB_EXPECT (RegBench) gives its expected seconds (bla-sweep --expect; 8 layers of
# RegBench: RB_EXPECT=560). What comes back ($OUT, 8 files at most): sw/sweep.log, sw/mqar/{results.csv,runs.tgz},
# CHECKPOINTS ckpt_*.tgz, rb.tgz (RegBench's results, logs and runs) and RB_CHECKPOINTS rb_ckpt/ckpt_*.tgz (0
# beside MQAR, whose files fill the 8; 4 with SKIP_MQAR=1): RegBench runs cut without one start again.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
t0=$(date +%s)
out=${OUT:-gpu-protocol}
mkdir -p "$out"
source scripts/gpu_build.sh
# shellcheck disable=SC2086  # BUILD_MORE is a list of targets
gpu_build "$out" bla-train bla-sweep ${BUILD_MORE:-} || { tail -40 "$out/build.log"; exit 1; }  # warm: a no-op
if [ -n "${BEFORE:-}" ]; then  # a check before the sweeps (CUDA tests, a benchmark); its time is theirs
  bash -c "$BEFORE" > "$out/before.log" 2>&1
  echo "gpu_protocol.sh: BEFORE exited $? after $(( $(date +%s) - t0 )) s (log: before.log)"
  tail -20 "$out/before.log"
fi
rest=$(( ${CALL_LIMIT:-560} - ($(date +%s) - t0) - 25 ))
echo "gpu_protocol.sh: the sweeps get $rest s"
[ "$rest" -lt 60 ] && exit 0
build=$BUILD_DIR
rb_work=${RB_WORK:-/tmp/rb}  # RegBench's sweep output, packed into $OUT/rb.tgz (tests give their own)
newest() { ls "$1"/call*_runs.tgz 2>/dev/null | sort -V | tail -1; }
mqar_sweep=configs/sweeps/mqar.yaml rb_sweep=configs/sweeps/regbench.yaml
name_of() { basename "$1" .yaml; }  # a sweep's folder name, under $build/sweeps/ and gpu_sweep.sh's OUT
restore_for() {  # SWEEP_FILE DATA_DIR [CHECKPOINT_DIR]: the archives a fresh machine unpacks into its folder
  [ -d "$build/sweeps/$(name_of "$1")" ] && return
  newest "$2"
  [ -n "${3:-}" ] && ls "$3"/ckpt_*.tgz 2>/dev/null
}
rb=""
if [ -z "${SKIP_RB:-}" ]; then
  rb_restore=$(restore_for "$rb_sweep" docs/data/regbench_protocol "${RB_CHECKPOINT_DIR:-}" | tr '\n' ' ')
  stagger=25 rb_keep=${RB_CHECKPOINTS:-0}
  [ -n "${SKIP_MQAR:-}" ] && stagger=0 rb_keep=${RB_CHECKPOINTS:-4}
  # RegBench starts once the MQAR sweep's own (no-op) build has configured: two cmake runs at once in one
  # build folder collide (2026-12-07: "can't create CMakeFiles/cmTC_...").
  (
    sleep $stagger
    mkdir -p "$rb_work"
    SWEEP=$rb_sweep ONLY=${RB_ONLY:-attention,attention_400_epochs} GPUS=0 \
      ENSEMBLE=4 CHECKPOINTS=$rb_keep LIMIT=$(( rest - stagger )) FINISH_BY=$(( rest - stagger - 20 )) \
      EXPECT=${RB_EXPECT:-} OUT="$rb_work" RESTORE="$rb_restore" \
      scripts/gpu_sweep.sh > "$rb_work/gpu_sweep.out" 2>&1
    mkdir -p "$out/rb_ckpt"
    mv "$rb_work/$(name_of "$rb_sweep")"/ckpt_*.tgz "$out/rb_ckpt/" 2>/dev/null
    tar czf "$out/rb.tgz" -C "$(dirname "$rb_work")" --exclude='ckpt_*' "$(basename "$rb_work")"
  ) &
  rb=$!
fi
if [ -z "${SKIP_MQAR:-}" ]; then
  mqar_restore=$(restore_for "$mqar_sweep" docs/data/mqar_protocol/full "${CHECKPOINT_DIR:-}" | tr '\n' ' ')
  echo "gpu_protocol.sh: MQAR restores ${mqar_restore:-nothing (warm)}"
  SWEEP=$mqar_sweep ONLY=${ONLY:-bla,bla_window,bla_window_2x,bla_window_32,swa_rope,gla,gsa,mamba2} \
    GPUS=${GPUS:-0,0} ENSEMBLE=${ENSEMBLE:-4} CHECKPOINTS=${CHECKPOINTS:-3} LIMIT=$rest FINISH_BY=$(( rest - 20 )) \
    EXPECT=${EXPECT:-} OUT="$out/sw" RESTORE="$mqar_restore" scripts/gpu_sweep.sh 2>&1 | tail -30
  # room for the checkpoints (8 files a call); tables.md is plot_sweep.py's from results.csv
  rm -f "$out/sw/build.log" "$out/sw/$(name_of "$mqar_sweep")/tables.md"
fi
if [ -n "$rb" ]; then wait "$rb"; tail -25 "$rb_work/gpu_sweep.out"; fi
find "$out" -type f | sort
