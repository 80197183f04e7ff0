#!/usr/bin/env bash
# Installs what bla-train needs to build on Debian/Ubuntu, skipping what is
# already there. LibTorch comes from Debian's libtorch-dev unless a Python
# PyTorch is installed (a CUDA machine), whose bundled LibTorch is then used.
set -euo pipefail

packages=(cmake ninja-build g++ libyaml-cpp-dev libspdlog-dev libcli11-dev nlohmann-json3-dev libgtest-dev)
if ! python3 -c 'import torch' >/dev/null 2>&1; then
  packages+=(libtorch-dev libgloo-dev)   # Gloo's headers are needed by c10d's headers
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all build dependencies are installed"
  exit 0
fi

echo "bootstrap: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
