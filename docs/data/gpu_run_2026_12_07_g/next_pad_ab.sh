#!/usr/bin/env bash
# Fresh call: build bla-train and bla-data, then the 125M model's tokens/s with attention and GatedFWA W512
# (its one product's rows padded to a multiple of 8 columns), one run each, in this order; everything into
# $OUT/ab.tgz.
set -uo pipefail
source scripts/gpu_build.sh
gpu_build $OUT bla-train bla-data || { tail -40 /tmp/pad_build/build.log; exit 1; }
mkdir -p /tmp/probe
source scripts/bench_corpus.sh
bench_corpus /tmp/probe > /tmp/probe/corpus.log 2>&1 || tail -5 /tmp/probe/corpus.log
d=data.path=build-gpu/data/bench_text
PYTHONUNBUFFERED=1 timeout 110 python3 scripts/bench_train.py --build build-gpu --variants all \
  --json $OUT/bench_125m.json \
  "configs/bench/lm_125m.yaml:none:$d" \
  "configs/bench/lm_125m.yaml:none:$d,model.mixer=gatedfwa,model.mixers.gatedfwa.window=512" \
  2>&1 | tee $OUT/bench_125m.txt | tail -12

tar czf $OUT/ab.tgz -C /tmp probe
