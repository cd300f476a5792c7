#!/usr/bin/env bash
# Installs every Debian package Kiln needs to build, test and run its examples.
set -euo pipefail
PKGS=(
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22 lld-22
  flatbuffers-compiler libflatbuffers-dev ninja-build ccache cmake
  python3-torch python3-numpy python3-flatbuffers libopenblas0-pthread
  libclang-rt-22-dev
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
