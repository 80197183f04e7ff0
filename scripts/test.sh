#!/usr/bin/env bash
# From a fresh machine: install what is missing, build, and run the test
# suite through ctest. Tests labelled "slow" run only with --all; tests
# labelled "cuda" exist only in CUDA builds and run there.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude="slow"
[ "${1:-}" = "--all" ] && exclude="^$"
scripts/bootstrap.sh
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "${JOBS:-$(nproc)}" -LE "$exclude"
