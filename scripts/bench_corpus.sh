# shellcheck shell=bash
# Sourced by the GPU benchmark scripts: bench_corpus OUT prepares, once per
# build folder, the synthetic byte-level corpus that configs/bench/lm_125m.yaml
# reads ($BUILD_DIR/data/bench_text, through bla-data prepare; only its
# shape matters: every position of every sequence is scored). Needs bla-data
# built; logs to OUT/prepare.log; returns 1 if preparing failed.
bench_corpus() {
  local out=$1
  [ -f "$BUILD_DIR/data/bench_text/index.json" ] && return 0
  python3 -c "
import random
r = random.Random(0)
words = [''.join(r.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(r.randint(2, 9))) for _ in range(5000)]
with open('/tmp/bench_text.txt', 'w') as f:
    for d in range(3000):
        f.write(' '.join(r.choice(words) for _ in range(300)) + '\\nENDOFDOC\\n')
"
  "$BUILD_DIR/src/bla-data" prepare --input /tmp/bench_text.txt --out "$BUILD_DIR/data/bench_text" \
    --separator=ENDOFDOC --val-fraction 0.02 > "$out/prepare.log" 2>&1 ||
    { echo "bla-data prepare failed"; cat "$out/prepare.log"; return 1; }
}
