#!/usr/bin/env bash
# Whether a change to kernels/ changes what the GPU runs, checked without a
# GPU: compiles each .cu file given (default: the production SWA, BLA and GLA
# kernels and the dev SWA kernels) to PTX for sm_90 at REV and in the working tree, renames
# registers and labels to one name per kind, and prints the lines that differ
# and ptxas's registers and spills per kernel on both sides. A refactor that
# leaves the normalised PTX the same (or changes only operand order) runs the
# same instructions. Needs nvcc; writes under ${OUT:-/tmp/kernel-ptx-diff}.
#   scripts/kernel_ptx_diff.sh HEAD
#   scripts/kernel_ptx_diff.sh main kernels/swa_backward.cu
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: scripts/kernel_ptx_diff.sh REV [FILE.cu ...]}
shift
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(kernels/swa_forward.cu kernels/swa_backward.cu kernels/bla_chunk_forward.cu
                                 kernels/bla_chunk_backward.cu kernels/bla_carry.cu kernels/gla_kernels.cu
                                 kernels/dev/swa_forward_dev.cu kernels/dev/swa_backward_dev.cu)
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
# The options kernels/CMakeLists.txt compiles with (BLA_CUDA_OPTIONS), minus -lineinfo.
flags=(-std=c++17 -O3 -arch=sm_90 --use_fast_math --expt-relaxed-constexpr)
out=${OUT:-/tmp/kernel-ptx-diff}
rm -rf "$out" && mkdir -p "$out/base"
git archive "$rev" kernels | tar -x -C "$out/base"

# Registers, labels and the per-path hash of anonymous namespaces get one name each.
anonymous='s/_GLOBAL__N__[0-9a-f]+_/_GLOBAL__N__/g'
normalise() { sed -E "s/%(r|rd|p|f|fd|rs|h|hh)[0-9]+/%\1/g; s/\\\$L__BB[0-9_]+/LBL/g; $anonymous" "$1" | grep -v '^\s*//'; }
resources() {  # kernel name, registers, bytes spilled, from ptxas -v
  "$nvcc" "${flags[@]}" -I "$1/kernels" -I "$1/kernels/include" -I "$1/kernels/dev" -Xptxas -v \
    -c "$1/$2" -o /dev/null 2>&1 |
    awk '/Compiling entry function/ {match($0, /_Z[^'"'"']*/); name = substr($0, RSTART, RLENGTH)}
         /spill stores/ {spill = $5}
         /Used [0-9]+ registers/ {match($0, /Used [0-9]+/); print name, substr($0, RSTART + 5, RLENGTH - 5), spill}' |
    sed -E "$anonymous" | sort
}
status=0
for f in "${files[@]}"; do
  name=$(basename "$f" .cu)
  for side in base work; do
    root=$out/base
    [ $side = work ] && root=.
    "$nvcc" "${flags[@]}" -I "$root/kernels" -I "$root/kernels/include" -I "$root/kernels/dev" -ptx \
      "$root/$f" -o "$out/$name.$side.ptx"
    normalise "$out/$name.$side.ptx" > "$out/$name.$side.norm"
    resources "$root" "$f" > "$out/$name.$side.resources"
  done
  lines=$(diff "$out/$name.base.norm" "$out/$name.work.norm" | grep -c '^[<>]' || true)
  echo "$f: $lines normalised PTX lines differ"
  diff "$out/$name.base.norm" "$out/$name.work.norm" | grep '^[<>]' | sort | uniq -c | sort -rn | head -n 6 || true
  if ! diff -q "$out/$name.base.resources" "$out/$name.work.resources" > /dev/null; then
    echo "  registers / spilled bytes differ (name, base, working tree):"
    join -a1 -a2 -e- -o 0,1.2,1.3,2.2,2.3 "$out/$name.base.resources" "$out/$name.work.resources" |
      awk '$2 != $4 || $3 != $5 {print "   ", substr($1, 1, 90), $2 "/" $3, "->", $4 "/" $5}'
    status=1
  fi
  [ "$lines" = 0 ] || status=1
done
exit $status
