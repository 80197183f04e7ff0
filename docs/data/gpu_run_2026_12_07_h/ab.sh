#!/usr/bin/env bash
# After the build in fresh_all.sh (AB=next_ab.sh): the 125M model's tokens/s with attention, GatedFWA (its
# q, k, v and gate in one product since ce3d502; 0.874x attention in run 9, another call), BLA and SWA, every
# part of the step on, one run each (scripts/bench_train.py); everything into $OUT/ab.tgz.
mkdir -p /tmp/probe
source scripts/bench_corpus.sh
bench_corpus /tmp/probe > /tmp/probe/corpus.log 2>&1 || tail -5 /tmp/probe/corpus.log
d=data.path=build-gpu/data/bench_text
PYTHONUNBUFFERED=1 timeout 240 python3 scripts/bench_train.py --build build-gpu --variants all \
  --json /tmp/probe/bench_125m.json \
  "configs/bench/lm_125m.yaml:none:$d" \
  "configs/bench/lm_125m.yaml:none:$d,model.mixer=gatedfwa,model.mixers.gatedfwa.window=512" \
  "configs/bench/lm_125m.yaml:none:$d,model.mixer=bla,model.mixers.bla.window=512,model.mixers.bla.slots=64" \
  "configs/bench/lm_125m.yaml:none:$d,model.mixer=swa,model.mixers.swa.window=512" 2>&1 | tee /tmp/probe/bench_125m.txt | tail -12
tar czf $OUT/ab.tgz -C /tmp probe
# Where BLA's 125M step spends its time (0.864x attention on 2026-12-07): 25 steps, 5 profiled after capture.
OUT=/tmp/probe SKIP_BUILD=1 BUILD_DIR=build-gpu STEPS=25 PROFILE_STEPS=5 SHOW=45 RUN_TIMEOUT=120 timeout 150 \
  scripts/gpu_profile_step.sh \
  bla=configs/bench/lm_125m.yaml,model.mixer=bla,model.mixers.bla.window=512,model.mixers.bla.slots=64 \
  > /tmp/probe/profile_bla.out 2>&1
echo "bla profile rc=$?"; head -60 /tmp/probe/profile_bla.out
tar czf $OUT/ab.tgz -C /tmp probe
