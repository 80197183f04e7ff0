# shellcheck shell=bash
# Sourced by scripts that run the anchors' bench.py on the GPU machine: the
# compile caches of Triton (FLA's and mamba_ssm's kernels) and of Inductor
# (FlexAttention) kept between device calls, so that a call spends its
# minutes timing rather than compiling and autotuning (cold, FLA's chunk_gla
# and chunk_gsa each take more than 220 s on the H200 machine).
#
#   anchor_cache_restore ANCHORS_DIR   # points both caches at $ANCHOR_CACHE_DIR (/tmp/anchor-cache:
#                                      # Triton's index holds absolute paths, so always the same folder)
#                                      # and fills them from ANCHORS_DIR/compile-cache.txz if it is there
#   anchor_cache_save OUT_DIR          # writes OUT_DIR/compile-cache.txz (and .txz.partNN files if it
#                                      # passes 15 MiB, the device's per-file limit)
#
# Triton loads a cached kernel from its metadata (.json) and binary (.cubin)
# alone, so the intermediate forms (.ttir, .ttgir, .llir, .ptx, .source: 80%
# of the bytes) are not kept. Between calls: copy the returned
# compile-cache.txz (joined with `cat part* >` if split) into the git-ignored
# anchors folder, which the next call carries. Only compiled kernels are kept;
# bench.py never persists an autotuning choice.
ANCHOR_CACHE_DIR=${ANCHOR_CACHE_DIR:-/tmp/anchor-cache}

anchor_cache_restore() {
  mkdir -p "$ANCHOR_CACHE_DIR/triton" "$ANCHOR_CACHE_DIR/inductor"
  export TRITON_CACHE_DIR=$ANCHOR_CACHE_DIR/triton TORCHINDUCTOR_CACHE_DIR=$ANCHOR_CACHE_DIR/inductor
  if [ -f "$1/compile-cache.txz" ]; then
    tar xJf "$1/compile-cache.txz" -C "$ANCHOR_CACHE_DIR" &&
      echo "anchor compile cache: restored $(find "$ANCHOR_CACHE_DIR" -type f | wc -l) files"
  else
    echo "anchor compile cache: none in $1 (cold compile)"
  fi
}

anchor_cache_save() {
  local file=$1/compile-cache.txz
  find "$ANCHOR_CACHE_DIR/triton" -type f \( -name '*.ttir' -o -name '*.ttgir' -o -name '*.llir' -o -name '*.ptx' \
    -o -name '*.source' \) -delete
  XZ_OPT=${XZ_OPT:--T0} tar cJf "$file" -C "$ANCHOR_CACHE_DIR" triton inductor || return 1
  local bytes
  bytes=$(stat -c %s "$file")
  if [ "$bytes" -gt $((15 * 1024 * 1024)) ]; then
    split -b 15M -d "$file" "$file.part" && rm "$file"
  fi
  echo "anchor compile cache: saved $((bytes / 1024 / 1024)) MiB ($(find "$ANCHOR_CACHE_DIR" -type f | wc -l) files)"
}
