#!/usr/bin/env bash
# Builds Kiln and compiles and runs the bundled example model.
#   scripts/build.sh            install packages, configure, build, run the example
#   BUILD_DIR=... scripts/build.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"

"$ROOT/scripts/install-deps.sh"

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_DIR=/usr/lib/llvm-22/lib/cmake/llvm \
    -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld -DCMAKE_SHARED_LINKER_FLAGS=-fuse-ld=lld \
    "${launcher[@]}"
fi
ninja -C "$BUILD_DIR"

# The bundled example: compile the model file into an executable and run it.
EXAMPLE="$ROOT/examples/bible/bible.kiln"
if [ -f "$EXAMPLE" ]; then
  echo "== kiln-compile $EXAMPLE -o $BUILD_DIR/bible"
  "$BUILD_DIR/bin/kiln-compile" "$EXAMPLE" -o "$BUILD_DIR/bible"
  echo "== $BUILD_DIR/bible -p 'And God said' -n 200 --temp 0"
  "$BUILD_DIR/bible" -p "And God said" -n 200 --temp 0
  echo
fi
