#!/usr/bin/env bash
# On a CUDA machine: build with PyTorch's LibTorch, run the whole test suite
# (CPU tests and the tests labelled cuda), then short GPU training runs and
# the kernel benchmark. Logs go to ${OUT:-gpu-check}/.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
export BUILD_DIR=${BUILD_DIR:-build-gpu}
{ time scripts/build.sh; } > "$out/build.log" 2>&1 || { tail -n 60 "$out/build.log"; exit 1; }
tail -n 3 "$out/build.log"
ctest --test-dir "$BUILD_DIR" -j 8 --output-on-failure -LE slow > "$out/ctest.log" 2>&1
echo "ctest exit $?"; tail -n 25 "$out/ctest.log"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for mixer in attention swa bla; do
  cfg=configs/mqar_${mixer}.yaml
  [ -f "$cfg" ] || continue
  "$BUILD_DIR/src/bla-train" "$cfg" --out "$out/run_$mixer" --set train.steps=300 --set train.log_every=100 \
    > "$out/train_$mixer.log" 2>&1
  echo "train $mixer exit $?"; grep -E "step 300|done:" "$out/train_$mixer.log"
done
"$BUILD_DIR/src/bla-bench" --op swa --batch 4 --seq 8192 --heads 16 --dim 64 --window 512 --dtype bf16 \
  > "$out/bench.log" 2>&1; echo "bench exit $?"; tail -n 15 "$out/bench.log"

# Data-parallel throughput where there are 2+ GPUs (docs/distributed.md).
gpus=$(nvidia-smi -L | wc -l)
if [ "$gpus" -ge 2 ] && [ -z "${SKIP_DDP:-}" ]; then
  B=$BUILD_DIR/src
  common=(configs/dist_125m.yaml --set train.steps=40 --set train.log_every=10)
  CUDA_VISIBLE_DEVICES=0 $B/bla-train "${common[@]}" --out "$out/dist_g1" > "$out/dist_g1.log" 2>&1
  echo "g1 exit $?"
  CUDA_VISIBLE_DEVICES=0,1 $B/bla-launch --nproc-per-node 2 --master-port 0 -- $B/bla-train "${common[@]}" \
    --out "$out/dist_g2" --set train.batch_size=16 > "$out/dist_g2.log" 2>&1
  echo "g2 bla-launch exit $?"
  CUDA_VISIBLE_DEVICES=0,1 torchrun --no-python --standalone --nproc-per-node=2 $B/bla-train "${common[@]}" \
    --out "$out/dist_g2_torchrun" --set train.batch_size=16 > "$out/dist_g2_torchrun.log" 2>&1
  echo "g2 torchrun exit $?"
  python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def steady(run):
    rows = [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl")]
    rows = [r for r in rows if r["split"] == "train"]
    return (rows[-1]["tokens"] - rows[0]["tokens"]) / sum(r["log_interval_s"] for r in rows[1:])
base = steady("dist_g1")
for run, n in [("dist_g1", 1), ("dist_g2", 2), ("dist_g2_torchrun", 2)]:
    if os.path.exists(f"{out}/{run}/metrics.jsonl"):
        t = steady(run)
        print(f"{run}: {t:,.0f} tok/s, scaling efficiency {t / (n * base):.1%}")
PY
fi
