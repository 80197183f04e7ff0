#!/usr/bin/env bash
# Warm call after fresh_all.sh: issue 14's table in one call, the 125M language model and the Zoology-size MQAR
# model with attention, ours (every part on) beside the plain-PyTorch anchor (.anchors/lm_baseline.py, eager and
# torch.compile); then the MQAR sweep for the rest of the call (FINISH_BY as given).
#   LIMIT=560 FINISH_BY=540 bash .devbin/anchor_table.sh
t0=$(date +%s)
mkdir -p /tmp/table
d=data.path=build-gpu/data/bench_text
zoology="--d,128,--layers,2,--heads,2,--vocab,8192,--seq,256,--batch,256,--steps,60,--warm,20"
PYTHONUNBUFFERED=1 timeout 330 python3 scripts/bench_train.py --build build-gpu --anchors .anchors --variants all \
  --json /tmp/table/bench_anchor.json "configs/bench/lm_125m.yaml:--steps,40,--warm,10:$d" \
  "configs/bench/mqar_zoology.yaml:$zoology" 2>&1 | tee /tmp/table/bench_anchor.txt | tail -14
tar czf $OUT/table.tgz -C /tmp table
rest=$(( ${LIMIT:-560} - ($(date +%s) - t0) - 10 ))
echo "sweep gets $rest s"
[ "$rest" -lt 90 ] && exit 0
GPUS=0,0 ENSEMBLE=4 CHECKPOINTS=3 LIMIT=$rest FINISH_BY=${FINISH_BY:+$(( rest - 20 ))} bash .devbin/sweep.sh
