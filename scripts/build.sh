#!/usr/bin/env bash
# Configures and builds bla-train in ${BUILD_DIR:-build}: everything, or only
# the targets named as arguments (e.g. scripts/build.sh bla-train). On a machine with PyTorch
# installed, its bundled LibTorch (and CUDA, if it has it) is used.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
if [ -z "${CMAKE_PREFIX_PATH:-}" ] && python3 -c 'import torch' >/dev/null 2>&1; then
  CMAKE_PREFIX_PATH=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  export CMAKE_PREFIX_PATH
fi
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
targets=()
[ $# -gt 0 ] && targets=(--target "$@")
cmake --build "$build_dir" -j "${JOBS:-$(nproc)}" "${targets[@]}"
