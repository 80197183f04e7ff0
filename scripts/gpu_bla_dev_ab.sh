#!/usr/bin/env bash
# On the GPU machine, nothing built there: the BLA kernels of two builds of
# kernels/dev/bla_chunk_dev.cu, the default (bla_chunk_dev) and a variant
# behind compile flags (bla_chunk_dev_variant), both made by
# scripts/build_dev_harnesses.sh with BLA_VARIANT on any machine with nvcc.
# At each shape, ROUNDS rounds of the default then the variant: every
# launch's median time, and the variant's outputs against the default's
# (bit-identical, or by how much they differ).
#   BLA_VARIANT="-DFLAG ..." scripts/build_dev_harnesses.sh .devbin   # here; carry .devbin
#   DEV_BIN=.devbin scripts/gpu_bla_dev_ab.sh                         # there
#   SHAPES="--batch 4 --seq 8192 --heads 16 --dim 64 --slots 64 --window 512;..." ROUNDS=2
set -uo pipefail
bin=${DEV_BIN:-build-kernel-dev}
default_shapes="--batch 4 --seq 8192 --heads 16 --dim 64 --slots 64 --window 512"  # the op table's shape
default_shapes+=";--batch 4 --seq 8192 --heads 16 --dim 128 --slots 64 --window 512"
default_shapes+=";--batch 8 --seq 2048 --heads 12 --dim 64 --slots 64 --window 512"  # a 125M model's layer
default_shapes+=";--batch 1024 --seq 256 --heads 2 --dim 64 --slots 32 --window 256"  # MQAR, 4 members
default_shapes+=";--batch 1024 --seq 256 --heads 2 --dim 64 --slots 128 --window 256"
IFS=';' read -ra shapes <<< "${SHAPES:-$default_shapes}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "variant: $(cat "$bin/bla_chunk_dev_variant.flags" 2>/dev/null || echo '(flags not recorded)')"
status=0
for shape in "${shapes[@]}"; do
  for r in $(seq "${ROUNDS:-2}"); do
    echo "== round $r, default"
    # shellcheck disable=SC2086
    "$bin/bla_chunk_dev" $shape --write /tmp/bla_chunk_default.bin || status=1
    echo "== round $r, variant"
    # shellcheck disable=SC2086
    "$bin/bla_chunk_dev_variant" $shape --compare /tmp/bla_chunk_default.bin || status=1
  done
done
exit $status
