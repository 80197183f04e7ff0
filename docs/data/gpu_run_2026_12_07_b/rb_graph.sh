#!/usr/bin/env bash
# Short fresh call: build bla-train, then RegBench (attention) 200 steps with the captured step on and off.
set -uo pipefail
source scripts/gpu_build.sh
gpu_build /tmp/b bla-train || { tail -30 /tmp/b/build.log; exit 1; }
for g in on off; do
  timeout 60 build-gpu/src/bla-train configs/regbench_attention.yaml --set train.steps=200 --set train.warmup_steps=20 \
    --set train.log_every=50 --set train.cuda_graph=$g --set run.out_dir=/tmp/rb_$g > /tmp/rb_$g.log 2>&1
  echo "cuda_graph=$g rc=$?"; grep -iE "step +(50|100|150|200)|graph|error|accuracy" /tmp/rb_$g.log | head -12
done
