#!/usr/bin/env bash
# Next session, device call 1 (carry [".anchors", ".devbin"]): zero_grad-to-none (d2aa639, not yet on a GPU)
# checked and timed on the MQAR protocol's step beside 4cfa078 (the commit before it), the gate gradient's tile
# gather (not yet on a GPU) checked by the GLA harness and the GLA CUDA tests, then the BLA sweep.
#   LIMIT_ALL=540 bash .devbin/next_call1.sh
# If the tests fail: revert d2aa639 before any sweep (the sweep trains with it).
set -uo pipefail
t0=$(date +%s)
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
rm -rf /tmp/base && mkdir -p /tmp/base && tar xzf .devbin/base_4cfa078.tgz -C /tmp/base
# (the call brings back at most 8 files: this log goes into gpu_mqar_step.sh's logs.tgz)
mkdir -p $OUT/step/logs
timeout 120 .devbin/gla_forward_dev > $OUT/step/logs/gla_forward_dev.log 2>&1; echo "gla harness rc=$?"
grep -E "FAIL|^checks|^\[time\]" $OUT/step/logs/gla_forward_dev.log | head -12
OUT=$OUT/step BASE=/tmp/base TESTS=1 TEST_FILTER='*EnsembleOnGpu*:*TrainStep*:*ModelKernel*:*GlaKernel*:*BlaKernel*:*ProjectStacked*' MEMBERS=4 STEPS=300 POINTS="bla32 bla128 swa64" scripts/gpu_mqar_step.sh 2>&1 | tail -40
el step
if grep -q "^\[  FAILED  \]" "$OUT"/step/tests.log 2>/dev/null; then echo "tests failed: no sweep"; exit 1; fi
left=$(( ${LIMIT_ALL:-540} - ($(date +%s) - t0) ))
el "sweep for $left s"
if [ $left -gt 120 ]; then
  SWEEP=configs/sweeps/mqar.yaml ONLY=bla GPUS=0 LIMIT=$left OUT=$OUT/sw RESTORE=docs/data/mqar_protocol/full/call8_runs.tgz \
    scripts/gpu_sweep.sh 2>&1 | tail -25
fi
el end
