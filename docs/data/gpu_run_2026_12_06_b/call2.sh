#!/usr/bin/env bash
# session 2026-12-06b, device call 2: the SWA sweep goes on (on-disk state if the machine stayed warm, else RESTORE)
set -uo pipefail
nvidia-smi --query-gpu=name --format=csv,noheader
restore=""
if [ ! -d build-gpu/sweeps/mqar/runs ]; then restore="docs/data/mqar_protocol/full/call1_runs.tgz ${EXTRA_RESTORE:-}"; echo "fresh machine: restoring $restore"; fi
SWEEP=configs/sweeps/mqar.yaml ONLY=${ONLY:-swa} GPUS=0 LIMIT=${LIMIT:-540} OUT=$OUT/sw ${restore:+RESTORE="$restore"} scripts/gpu_sweep.sh 2>&1 | tail -30
