#!/usr/bin/env bash
# Tiny MQAR state-efficiency comparison (docs/bla.md and docs/mixers.md): BLA at several slot
# counts against SWA at several windows and the other mixers, same model and
# budget, one run each. Prints "mixer,param,state_per_layer,accuracy" rows and
# writes them to ${OUT:-runs/mqar_state_sweep}/results.csv.
# Usage: scripts/mqar_state_sweep.sh [extra --set overrides...]
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${BUILD_DIR:-build}/src/bla-train
out=${OUT:-runs/mqar_state_sweep}
mkdir -p "$out"
base=(configs/mqar_bla.yaml --set data.seq_len=128 --set data.num_kv_pairs=8 --set data.vocab_size=256
      --set data.train_examples=100000 --set train.steps=${STEPS:-1500} --set train.batch_size=64
      --set train.lr=3e-3 --set train.log_every=250 --set train.eval_every=0 --set train.eval_examples=1000
      --set train.checkpoint_every=0 --set model.d_model=64 --set model.layers=2 --set model.heads=2)
run() {  # name, overrides...
  local name=$1; shift
  "$bin" "${base[@]}" --out "$out/$name" "$@" "${EXTRA[@]}" > "$out/$name.log" 2>&1 || { echo "$name,failed"; return; }
  python3 -c "import json,sys; s=json.load(open('$out/$name/summary.json')); \
print('$name,%d,%.4f' % (s['state']['per_layer'][0]['state_numel'], s['test']['accuracy']))"
}
EXTRA=("$@")
echo "run,state_per_layer,accuracy" | tee "$out/results.csv"
{
  for n in 8 16 32; do run "bla_w128_n$n" --set model.mixer=bla --set model.mixers.bla="{window: 128, slots: $n}"; done
  for w in 8 16 32 64 128; do run "swa_w$w" --set model.mixer=swa --set model.mixers.swa="{window: $w}"; done
  run attention --set model.mixer=attention
  run gla --set model.mixer=gla
  run gsa_m16 --set model.mixer=gsa --set model.mixers.gsa="{slots: 16}"
  run mamba2 --set model.mixer=mamba2 --set model.mixers.mamba2="{d_state: 16, head_dim: 32}"
} | tee -a "$out/results.csv"
