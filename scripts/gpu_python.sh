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

# A byte-level text model (a synthetic corpus: no download), exported for transformers and lm-eval.
if [ -z "${SKIP_LM_EVAL:-}" ] && python3 -c "import lm_eval" 2>/dev/null; then
  python3 -c "
import random
r = random.Random(0)
words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'far', 'away', 'home']
with open('/tmp/hf_text.txt', 'w') as f:
    for d in range(400):
        f.write(' '.join(r.choice(words) for _ in range(60)) + '\n\n')
"
  B=$BUILD_DIR/src
  $B/bla-data prepare --input /tmp/hf_text.txt --out "$out/text_data" > "$out/lm_eval.log" 2>&1
  $B/bla-train configs/text_bla.yaml --out "$out/text_run" --set data.path="$out/text_data" --set train.steps=100 \
    --set train.eval_every=0 --set train.checkpoint_every=100 >> "$out/lm_eval.log" 2>&1
  ckpt=$(ls "$out"/text_run/checkpoints/*.ckpt | tail -n 1)
  $B/bla-export "$ckpt" --out "$out/text_hf" --format hf >> "$out/lm_eval.log" 2>&1
  echo "export rc=$?"
  timeout 300 lm_eval --model hf --model_args pretrained="$out/text_hf",trust_remote_code=True,dtype=float32 \
    --tasks lambada_openai --limit 20 --batch_size 1 --device cuda >> "$out/lm_eval.log" 2>&1
  echo "lm_eval rc=$?"; tail -n 12 "$out/lm_eval.log"
fi
