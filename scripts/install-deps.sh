#!/usr/bin/env bash
# Installs every Debian package Kiln needs to build, test and run its examples.
set -euo pipefail
PKGS=(
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22 lld-22
  flatbuffers-compiler libflatbuffers-dev nlohmann-json3-dev ninja-build ccache cmake
  python3-torch python3-numpy python3-flatbuffers libopenblas0-pthread
  libclang-rt-22-dev libomp5-14
)
# Node.js runs the JavaScript reference tokenizers (test/npm); the machines
# come with it, Debian's nodejs/npm are the fallback.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  PKGS+=(nodejs npm)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
else
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The npm packages the tests compare with (versions pinned by the lock file).
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NPM_DIR="$ROOT/test/npm"
if ! cmp -s "$NPM_DIR/package-lock.json" "$NPM_DIR/node_modules/.package-lock.json.kiln"; then
  (cd "$NPM_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$NPM_DIR/package-lock.json" "$NPM_DIR/node_modules/.package-lock.json.kiln"
fi
