#!/usr/bin/env bash
# device call 1: build, CUDA step tests, profile, zoology bench
set -uo pipefail
t0=$(date +%s); o=/tmp/o; mkdir -p $o
el() { echo "[t+$(( $(date +%s) - t0 ))s] $*"; }
git log --oneline -1 2>/dev/null; el start
source scripts/gpu_build.sh
gpu_build $o bla-train bla-data bla_cuda_tests bla-bench || { tar czf $OUT/all.tgz -C $o .; exit 1; }
el built
timeout 100 $BUILD_DIR/tests/bla_cuda_tests --gtest_filter='*TrainStep*:*ModelKernel*:*ProjectStacked*' > $o/tests.log 2>&1; echo "cuda tests rc=$?"
grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure" $o/tests.log | head -30
el tested
SKIP_BUILD=1 SHOW=45 STEPS=25 RUN_TIMEOUT=70 OUT=$o/prof scripts/gpu_profile_step.sh zoology=configs/bench/mqar_zoology.yaml proto_bla=configs/mqar_bla.yaml,model.d_model=128,model.layers=2,model.heads=2,model.mlp=none,model.short_conv=3,data.vocab_size=8192,data.seq_len=256,data.num_kv_pairs=16,data.train_examples=20000,data.test_examples=256,train.batch_size=256,train.lr=2.2e-3,train.epochs=0,train.warmup_steps=10,train.log_every=10,train.eval_every=0,train.eval_examples=256,train.checkpoint_every=0,model.mixers.bla.rope=false,model.mixer=bla,model.mixers.bla.window=256,model.mixers.bla.slots=32 proto_swa=configs/mqar_bla.yaml,model.d_model=128,model.layers=2,model.heads=2,model.mlp=none,model.short_conv=3,data.vocab_size=8192,data.seq_len=256,data.num_kv_pairs=16,data.train_examples=20000,data.test_examples=256,train.batch_size=256,train.lr=2.2e-3,train.epochs=0,train.warmup_steps=10,train.log_every=10,train.eval_every=0,train.eval_examples=256,train.checkpoint_every=0,model.mixers.bla.rope=false,model.mixer=swa,model.mixers.swa.window=64,model.mixers.swa.rope=false lm_attn=configs/bench/lm_125m.yaml lm_bla=configs/bench/lm_125m.yaml,model.mixer=bla,model.mixers.bla.window=512,model.mixers.bla.slots=64 > $o/prof.txt 2>&1; echo "profile rc=$?"
el profiled
PYTHONUNBUFFERED=1 timeout 150 python3 scripts/bench_train.py --build build-gpu --anchors .anchors --variants all,no_graph --json $o/bench_zoology.json "configs/bench/mqar_zoology.yaml:--d,128,--layers,2,--heads,2,--vocab,8192,--seq,256,--batch,256,--steps,60,--warm,20" > $o/bench_zoology.txt 2>&1; tail -8 $o/bench_zoology.txt
el benched
tar czf $OUT/all.tgz -C $o .
