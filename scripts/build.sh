#!/usr/bin/env bash
# Configures and builds bla-train in ${BUILD_DIR:-build}: everything, or only
# the targets named as arguments (e.g. scripts/build.sh bla-train). On a machine with a PyTorch
# wheel installed, its bundled LibTorch (and CUDA, if it has it) is used; Debian's
# python3-torch has none of its own, and the system LibTorch is used.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
if [ -z "${CMAKE_PREFIX_PATH:-}" ] && prefix=$(scripts/pytorch_cmake_prefix.sh); then
  export CMAKE_PREFIX_PATH=$prefix
fi
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
targets=()
[ $# -gt 0 ] && targets=(--target "$@")
cmake --build "$build_dir" -j "${JOBS:-$(nproc)}" "${targets[@]}"
