#!/usr/bin/env bash
# On a CUDA machine with PyTorch (and, if present, transformers and
# lm-evaluation-harness): build the programs and libbla_torch_ops.so with
# PyTorch's LibTorch, run the Python tests (python/tests: the ops, the layers,
# the Hugging Face export; its from_pretrained test runs where transformers
# imports), then export a small trained model with --format hf and, where
# lm_eval is installed, score it with lm_eval --model hf. Logs go to
# ${OUT:-gpu-python}/.
#   scripts/gpu_python.sh
#   SKIP_LM_EVAL=1 scripts/gpu_python.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-python}
source scripts/gpu_build.sh
gpu_build "$out" bla-train bla-eval bla-export bla-generate bla-data bla_torch_ops || exit 1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  2>&1 | tail -n 1
python3 -c "import lm_eval; print('lm_eval', lm_eval.__version__)" 2>&1 | tail -n 1

BLA_TORCH_OPS=$PWD/python/bla_train/lib/libbla_torch_ops.so BLA_PROGRAMS=$PWD/$BUILD_DIR/src PYTHONPATH=$PWD/python \
  timeout 540 python3 -m pytest -q -p no:cacheprovider python/tests -rs > "$out/pytest.log" 2>&1
echo "pytest rc=$?"; tail -n 15 "$out/pytest.log"

# A byte-level text model (a synthetic corpus: no download), exported for transformers and scored by
# lm_eval on a local task (the machine reaches no dataset hub): log-likelihood of held-out continuations.
if [ -z "${SKIP_LM_EVAL:-}" ] && python3 -c "import lm_eval" 2>/dev/null; then
  mkdir -p "$out/text_docs" "$out/tasks"
  python3 - "$out" <<'PY'
import json, random, sys
out = sys.argv[1]
r = random.Random(0)
words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'far', 'away', 'home']
for d in range(400):
    with open(f'{out}/text_docs/doc{d}.txt', 'w') as f:
        f.write(' '.join(r.choice(words) for _ in range(60)))
with open(f'{out}/tasks/bla_local_text.jsonl', 'w') as f:
    for _ in range(50):
        text = ' '.join(r.choice(words) for _ in range(12))
        f.write(json.dumps({'context': text, 'continuation': ' ' + r.choice(words)}) + '\n')
with open(f'{out}/tasks/bla_local_text.yaml', 'w') as f:
    f.write(f"""task: bla_local_text
dataset_path: json
dataset_kwargs:
  data_files:
    test: {out}/tasks/bla_local_text.jsonl
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{context}}}}"
doc_to_target: "{{{{continuation}}}}"
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
    aggregation: mean
    higher_is_better: true
""")
PY
  B=$BUILD_DIR/src
  $B/bla-data prepare --input "$out"/text_docs/*.txt --out "$out/text_data" > "$out/lm_eval.log" 2>&1
  $B/bla-train configs/text_bla.yaml --out "$out/text_run" --set data.path="$out/text_data" --set train.steps=100 \
    --set train.eval_every=0 --set train.checkpoint_every=100 >> "$out/lm_eval.log" 2>&1
  ckpt=$(ls "$out"/text_run/checkpoints/*.ckpt | tail -n 1)
  $B/bla-export "$ckpt" --out "$out/text_hf" --format hf >> "$out/lm_eval.log" 2>&1
  echo "export rc=$?"
  HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 PYTHONPATH=$PWD/python \
    BLA_TORCH_OPS=$PWD/python/bla_train/lib/libbla_torch_ops.so timeout 300 \
    lm_eval --model hf --model_args pretrained="$out/text_hf",trust_remote_code=True,dtype=float32 \
    --include_path "$out/tasks" --tasks bla_local_text --batch_size 4 --device cuda >> "$out/lm_eval.log" 2>&1
  echo "lm_eval rc=$?"; tail -n 12 "$out/lm_eval.log"
fi
