#!/usr/bin/env bash
# Builds the GLA and SSD kernel harnesses (kernels/dev/gla_forward_dev.cu,
# kernels/dev/ssd_chunk_dev.cu) with nvcc alone, into DIR (default
# build-kernel-dev). nvcc needs no GPU, so this runs on a CPU machine too:
# carry DIR to the GPU machine and run the programs there, or give it to
# scripts/gpu_mixer_kernels.sh as DEV_BIN. ARCH picks the card (default
# sm_90, the project's CMake default).
#   scripts/build_dev_harnesses.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-kernel-dev}
mkdir -p "$dir"
flags=(-std=c++17 -O3 -arch="${ARCH:-sm_90}" --use_fast_math -lineinfo --expt-relaxed-constexpr -Ikernels)
nvcc "${flags[@]}" kernels/dev/gla_forward_dev.cu kernels/gla_kernels.cu -o "$dir/gla_forward_dev"
nvcc "${flags[@]}" kernels/dev/ssd_chunk_dev.cu -o "$dir/ssd_chunk_dev"
echo "built $dir/gla_forward_dev and $dir/ssd_chunk_dev for ${ARCH:-sm_90} from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- kernels || echo ' (kernels/ edited since)')"
