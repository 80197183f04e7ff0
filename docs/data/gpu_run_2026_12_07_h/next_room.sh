#!/usr/bin/env bash
# The tracked tree and .devbin with four checkpoints (52.4 MB) pass the 64 MiB a device call carries.
# `bash .devbin/room.sh out` moves every docs/data/mqar_protocol/full/callN_runs.tgz but the newest (the one a sweep
# restores; the older ones hold subsets of its runs) out of the working tree before a call that carries .devbin;
# `bash .devbin/room.sh back` puts them back (git status clean again).
set -euo pipefail
cd "$(dirname "$0")/.."
hold=/tmp/hold_archives
dir=docs/data/mqar_protocol/full
case "${1:-}" in
  out)
    mkdir -p $hold
    newest=$(ls $dir/call*_runs.tgz | sed 's/.*call\([0-9]*\)_runs.tgz/\1/' | sort -n | tail -1)
    for f in $dir/call*_runs.tgz; do if [ "$f" != "$dir/call${newest}_runs.tgz" ]; then mv "$f" $hold/; fi; done
    echo "kept $dir/call${newest}_runs.tgz; moved $(ls $hold | wc -l) to $hold" ;;
  back) mv $hold/* $dir/ 2>/dev/null || true; git status --short ;;
  *) echo "usage: room.sh out|back" >&2; exit 2 ;;
esac
