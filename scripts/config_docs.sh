#!/usr/bin/env bash
# Regenerates the key reference in docs/config.md from the declared schemas:
# the blocks between "<!-- begin: bla-train --keys -->" and its end marker
# (and the same for bla-sweep) are replaced by what the programs print.
# Run after changing a key; a test fails while the docs differ.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
python3 - "$build/src/bla-train" "$build/src/bla-sweep" docs/config.md <<'PY'
import subprocess, sys
train, sweep, doc = sys.argv[1:]
text = open(doc).read()
for name, program in (("bla-train --keys", train), ("bla-sweep --keys", sweep)):
    generated = subprocess.run([program, "--keys"], check=True, capture_output=True, text=True).stdout
    begin, end = f"<!-- begin: {name} -->\n", f"<!-- end: {name} -->"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = head + begin + generated + end + tail
open(doc, "w").write(text)
PY
echo "docs/config.md: regenerated"
