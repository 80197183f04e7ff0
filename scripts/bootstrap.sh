#!/usr/bin/env bash
# Installs what bla-train needs to build on Debian/Ubuntu, skipping what is
# already there (a tool on PATH or a header on the include path counts).
# LibTorch comes from Debian's libtorch-dev unless a Python PyTorch with its
# own LibTorch is installed (a CUDA machine), which is then used.
set -euo pipefail
cd "$(dirname "$0")/.."

# package:probe (a command name, or an absolute path that must exist)
wanted=(
  cmake:cmake ninja-build:ninja g++:g++
  libyaml-cpp-dev:/usr/include/yaml-cpp/yaml.h
  libspdlog-dev:/usr/include/spdlog/spdlog.h
  libcli11-dev:/usr/include/CLI/CLI.hpp
  nlohmann-json3-dev:/usr/include/nlohmann/json.hpp
  libgtest-dev:/usr/include/gtest/gtest.h
  xz-utils:xz  # the anchors' compile-cache archive (scripts/anchor_cache.sh and its test)
)
if ! scripts/pytorch_cmake_prefix.sh >/dev/null; then
  # Gloo's headers are needed by c10d's headers.
  # OpenBLAS: without it Debian's LibTorch multiplies matrices with the
  # reference BLAS, about 8x slower (measured on the default MQAR job).
  # SentencePiece: optional (text tokenizer models); CI builds with it.
  # python3-torch is built on the same system LibTorch as libtorch-dev, so the
  # PyTorch ops library (python/) loads into it: with pytest and numpy it runs
  # the tests labelled python; venv, pip and setuptools install ./python offline.
  dist=/usr/lib/python3/dist-packages
  wanted+=(libtorch-dev:/usr/include/torch/script.h libgloo-dev:/usr/include/gloo/algorithm.h
           libopenblas0-pthread:/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
           libsentencepiece-dev:/usr/include/sentencepiece_processor.h
           python3-torch:$dist/torch/__init__.py python3-pytest:$dist/pytest/__init__.py
           python3-numpy:$dist/numpy/__init__.py python3-pip:$dist/pip/__init__.py
           python3-setuptools:$dist/setuptools/__init__.py python3-venv:/usr/share/doc/python3-venv)
fi

missing=()
for item in "${wanted[@]}"; do
  package=${item%%:*} probe=${item#*:}
  if [[ $probe == /* ]]; then [ -e "$probe" ] && continue; else command -v "$probe" >/dev/null && continue; fi
  missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all build dependencies are present"
  exit 0
fi

echo "bootstrap: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
