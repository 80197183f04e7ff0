# Sourced by the scripts/gpu_*.sh scripts: gpu_build OUT TARGET... prints the
# GPU, builds the targets into $BUILD_DIR (default build-gpu) with PyTorch's
# LibTorch, logs to OUT/build.log, and on failure prints every error at once
# (the build goes on past the first failed file) and returns 1.
export BUILD_DIR=${BUILD_DIR:-build-gpu}

gpu_build() {
  local out=$1
  shift
  mkdir -p "$out"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  local t0
  t0=$(date +%s)
  if ! { time scripts/build.sh "$@"; } > "$out/build.log" 2>&1; then
    cmake --build "$BUILD_DIR" -j "$(nproc)" --target "$@" -- -k 0 >> "$out/build.log" 2>&1
    grep -E "error" -A5 "$out/build.log" | head -80
    return 1
  fi
  echo "build: $(( $(date +%s) - t0 )) s"
}
