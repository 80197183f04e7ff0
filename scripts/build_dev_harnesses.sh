#!/usr/bin/env bash
# Builds the GLA, SSD and BLA kernel harnesses (kernels/dev/gla_forward_dev.cu,
# ssd_chunk_dev.cu, bla_chunk_dev.cu) with nvcc alone, into DIR (default
# build-kernel-dev). nvcc needs no GPU, so this runs on a CPU machine too:
# carry DIR to the GPU machine and run the programs there, or give it to
# scripts/gpu_mixer_kernels.sh as DEV_BIN. ARCH picks the card (default
# sm_90, the project's CMake default). BLA_VARIANT="-DFLAG ..." also builds
# bla_chunk_dev_variant with those flags (kernels/dev/README.md, "Variants
# behind a compile flag"), to time and check against bla_chunk_dev there.
# HARNESSES picks some of them (default "gla ssd bla").
#   scripts/build_dev_harnesses.sh [DIR]
#   HARNESSES=bla BLA_VARIANT="-DMY_VARIANT" scripts/build_dev_harnesses.sh .devbin
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-kernel-dev}
mkdir -p "$dir"
flags=(-std=c++17 -O3 -arch="${ARCH:-sm_90}" --use_fast_math -lineinfo --expt-relaxed-constexpr -Ikernels)
harnesses=" ${HARNESSES:-gla ssd bla} "
built=()
if [[ $harnesses == *" gla "* ]]; then
  nvcc "${flags[@]}" kernels/dev/gla_forward_dev.cu kernels/gla_kernels.cu -o "$dir/gla_forward_dev"
  built+=(gla_forward_dev)
fi
if [[ $harnesses == *" ssd "* ]]; then
  nvcc "${flags[@]}" kernels/dev/ssd_chunk_dev.cu -o "$dir/ssd_chunk_dev"
  built+=(ssd_chunk_dev)
fi
if [[ $harnesses == *" bla "* ]]; then
  bla=(kernels/dev/bla_chunk_dev.cu kernels/bla_carry.cu kernels/bla_chunk_forward.cu kernels/bla_chunk_backward.cu)
  nvcc "${flags[@]}" "${bla[@]}" -o "$dir/bla_chunk_dev"
  built+=(bla_chunk_dev)
  if [ -n "${BLA_VARIANT:-}" ]; then
    # shellcheck disable=SC2086
    nvcc "${flags[@]}" $BLA_VARIANT "${bla[@]}" -o "$dir/bla_chunk_dev_variant"
    echo "$BLA_VARIANT" > "$dir/bla_chunk_dev_variant.flags"
    built+=("bla_chunk_dev_variant ($BLA_VARIANT)")
  fi
fi
echo "built in $dir: ${built[*]}; for ${ARCH:-sm_90} from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- kernels || echo ' (kernels/ edited since)')"
