#!/usr/bin/env bash
# The tracked tree (14.6 MB) and .devbin with four checkpoints (52.4 MB) pass the 64 MiB a device call carries.
# `bash .devbin/room.sh out` moves the archives of calls 1..19 (subsets of call 20's runs) out of the working tree
# before a call that carries .devbin; `bash .devbin/room.sh back` puts them back (git status clean again).
set -euo pipefail
cd "$(dirname "$0")/.."
hold=/tmp/hold_archives
case "${1:-}" in
  out) mkdir -p $hold; for i in $(seq 1 19); do f=docs/data/mqar_protocol/full/call${i}_runs.tgz; [ -f $f ] && mv $f $hold/; done ;;
  back) [ -d $hold ] && mv $hold/* docs/data/mqar_protocol/full/ 2>/dev/null; git status --short ;;
  *) echo "usage: room.sh out|back" >&2; exit 2 ;;
esac
