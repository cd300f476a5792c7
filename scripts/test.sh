#!/usr/bin/env bash
# Runs every Kiln test (lit: dialect, passes, driver, runtime, end to end).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  "$ROOT/scripts/build.sh"
fi
# llama.cpp, the peer the GGUF tests compare with (built once, ~8 min on 2
# cores; a no-op afterwards).
"$ROOT/scripts/llama-cpp.sh" >/dev/null
ninja -C "$BUILD_DIR" check-kiln
