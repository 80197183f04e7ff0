#!/usr/bin/env bash
# continue the SWA sweep; on a fresh machine restore the last call's runs first
set -uo pipefail
r=""; [ -d build-gpu/sweeps/mqar ] || r=.devbin/c1_runs.tgz
echo "restore: ${r:-none (warm)}"
SWEEP=configs/sweeps/mqar.yaml ONLY=${ONLY:-swa} GPUS=0 LIMIT=${LIMIT:-570} OUT=$OUT/sw RESTORE="$r" scripts/gpu_sweep.sh 2>&1 | tail -30
