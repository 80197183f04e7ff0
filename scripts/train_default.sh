#!/usr/bin/env bash
# From a fresh machine: install what is missing, build, and train the default
# job (MQAR with attention; a few minutes on 2 CPU cores). Prints the test
# accuracy at the end. Extra arguments go to bla-train (e.g. --set ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/build.sh bla-train
exec "${BUILD_DIR:-build}/src/bla-train" configs/mqar_attention.yaml "$@"
