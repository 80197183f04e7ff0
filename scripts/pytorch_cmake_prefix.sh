#!/usr/bin/env bash
# Prints the CMake prefix of Python's PyTorch when it ships its own LibTorch
# (a PyTorch wheel: <prefix>/Torch/TorchConfig.cmake exists), and exits 1
# otherwise. Debian's python3-torch has no TorchConfig.cmake there: it uses the
# system LibTorch of libtorch-dev, which CMake finds without a prefix.
set -euo pipefail
prefix=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null) || exit 1
[ -f "$prefix/Torch/TorchConfig.cmake" ] || exit 1
echo "$prefix"
