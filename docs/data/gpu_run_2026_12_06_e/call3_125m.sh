#!/usr/bin/env bash
# Warm call after next_call1.sh (its /tmp/base/build-gpu holds 4cfa078's bla-train): the 125M step of attention and
# BLA with 4cfa078 and this tree alternately (2 rounds), then the anchor (eager + compile) once.
#   bash .devbin/call2_125m.sh
set -uo pipefail
t0=$(date +%s); el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
o=$OUT/m125; mkdir -p $o
source scripts/gpu_build.sh
gpu_build "$o" bla-train bla-data || exit 1
source scripts/bench_corpus.sh
bench_corpus "$o" || exit 1
el built
data=data.path=$PWD/build-gpu/data/bench_text
att="configs/bench/lm_125m.yaml:none:$data"
bla="configs/bench/lm_125m.yaml:none:$data,model.mixer=bla,model.mixers.bla.window=512,model.mixers.bla.slots=64"
swa="configs/bench/lm_125m.yaml:none:$data,model.mixer=swa,model.mixers.swa.window=512"
for r in 1 2; do
  for b in /tmp/base/build-gpu build-gpu; do
    tag=$( [ $b = build-gpu ] && echo this || echo base )
    PYTHONUNBUFFERED=1 timeout 200 python3 scripts/bench_train.py --build $b --variants all --json $o/r${r}_$tag.json \
      "$att" "$bla" > $o/r${r}_$tag.txt 2>&1
    el "round $r $tag"; grep -E "bla-train|tokens" $o/r${r}_$tag.txt | tail -4
  done
done
PYTHONUNBUFFERED=1 timeout 200 python3 scripts/bench_train.py --build build-gpu --variants all --json $o/swa_this.json "$swa" \
  > $o/swa_this.txt 2>&1; el swa; tail -4 $o/swa_this.txt
PYTHONUNBUFFERED=1 timeout 240 python3 scripts/bench_train.py --build build-gpu --anchors .anchors --variants all \
  --json $o/anchor.json "configs/bench/lm_125m.yaml:--steps,40,--warm,10:$data" > $o/anchor.txt 2>&1
el anchor; tail -8 $o/anchor.txt
(cd $OUT && tar czf m125.tgz m125 && rm -rf m125)
el end
