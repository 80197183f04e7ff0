#!/usr/bin/env bash
# Continue the BLA sweep (a warm machine keeps its checkpoints; a fresh one restores the last runs.tgz).
#   LIMIT=540 bash .devbin/sweep.sh
set -uo pipefail
r=""; [ -d build-gpu/sweeps/mqar ] || r=${RESTORE:-docs/data/mqar_protocol/full/call8_runs.tgz}
echo "restore: ${r:-none (warm)}"
SWEEP=configs/sweeps/mqar.yaml ONLY=${ONLY:-bla} GPUS=0 LIMIT=${LIMIT:-540} OUT=$OUT/sw RESTORE="$r" scripts/gpu_sweep.sh 2>&1 | tail -30
