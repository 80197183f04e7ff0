# shellcheck shell=bash
# Sourced by scripts that run the anchors' bench.py on the GPU machine: the
# compile caches of Triton (FLA's and mamba_ssm's kernels) and of Inductor
# (FlexAttention) kept between device calls, so that a call spends its
# minutes timing rather than compiling and autotuning (a cold chunk_gla and
# chunk_gsa take more than 200 s each on the H200 machine).
#
#   anchor_cache_restore ANCHORS_DIR   # points both caches at /tmp/anchor-cache and fills
#                                      # them from ANCHORS_DIR/compile-cache.tgz if it is there
#   anchor_cache_save OUT_DIR          # writes OUT_DIR/compile-cache.tgz (and .tgz.partNN
#                                      # files if it passes 15 MiB, the device's per-file limit)
#
# Between calls: copy the returned compile-cache.tgz (joined with `cat part* >` if split)
# into the git-ignored anchors folder, which the next call carries. Only
# compiled kernels are kept; bench.py never persists an autotuning choice.
ANCHOR_CACHE_DIR=${ANCHOR_CACHE_DIR:-/tmp/anchor-cache}

anchor_cache_restore() {
  mkdir -p "$ANCHOR_CACHE_DIR/triton" "$ANCHOR_CACHE_DIR/inductor"
  export TRITON_CACHE_DIR=$ANCHOR_CACHE_DIR/triton TORCHINDUCTOR_CACHE_DIR=$ANCHOR_CACHE_DIR/inductor
  if [ -f "$1/compile-cache.tgz" ]; then
    tar xzf "$1/compile-cache.tgz" -C "$ANCHOR_CACHE_DIR" && echo "anchor compile cache: restored $(du -sh "$ANCHOR_CACHE_DIR" | cut -f1)"
  else
    echo "anchor compile cache: none in $1 (cold compile)"
  fi
}

anchor_cache_save() {
  local file=$1/compile-cache.tgz
  tar czf "$file" -C "$ANCHOR_CACHE_DIR" triton inductor || return 1
  local bytes
  bytes=$(stat -c %s "$file")
  if [ "$bytes" -gt $((15 * 1024 * 1024)) ]; then
    split -b 15M -d "$file" "$file.part" && rm "$file"
  fi
  echo "anchor compile cache: saved $((bytes / 1024 / 1024)) MiB ($(find "$ANCHOR_CACHE_DIR" -type f | wc -l) files)"
}
