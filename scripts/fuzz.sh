#!/usr/bin/env bash
# Builds the libFuzzer targets (the runtime's model-file reader, tokenizers
# and flag parser; the converters' GGUF and Hugging Face readers) and the
# sanitized unit tests
# (AddressSanitizer + UndefinedBehaviorSanitizer, clang-22) in build-fuzz/,
# runs the unit tests, then each fuzzer from its committed seed corpus
# (test/fuzz/corpus/<target>) for a fixed number of runs with a fixed seed,
# so CI replays exactly what was run before committing. Any crash, leak or
# sanitizer report fails the script; crash inputs land in build-fuzz/crashes.
#   scripts/fuzz.sh                 the CI budget
#   FUZZ_SECONDS=3600 scripts/fuzz.sh   fuzz each target for an hour instead
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD" -DKILN_RUNTIME_ONLY=ON -DKILN_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22
fi
ninja -C "$BUILD" fuzz_model_file fuzz_text fuzz_options fuzz_template fuzz_gguf fuzz_hf \
  kiln-runtime-unittests-san

echo "== runtime unit tests under ASan+UBSan"
"$BUILD/bin/kiln-runtime-unittests-san"

# Generated executables linked against the sanitized runtime, running the
# runtime's lit tests (flags, bad input, context limits, encoder-decoder
# beams, determinism) and kiln-convert's (text prompts through the BPE
# tokenizers). Needs the main build (scripts/build.sh) for kiln-compile.
MAIN_BUILD="${BUILD_DIR:-$ROOT/build}"
if [ -x "$MAIN_BUILD/bin/kiln-compile" ]; then
  ninja -C "$BUILD" kiln_runtime_san
  echo "== generated executables under ASan+UBSan"
  KILN_SAN_RUNTIME="$BUILD/lib/libkiln_runtime_san.a" \
  KILN_SAN_LINKER="$BUILD/bin/kiln-san-link" \
    /usr/lib/llvm-22/bin/lit -sv "$MAIN_BUILD/test/Runtime" \
      "$MAIN_BUILD/test/Convert/cli.test"
else
  echo "fuzz.sh: $MAIN_BUILD/bin/kiln-compile not built; run scripts/build.sh first" >&2
  exit 1
fi

mkdir -p "$BUILD/crashes"
echo "== regressions: inputs that crashed a fuzzer once"
for t in model_file text options template gguf hf; do
  dir="$ROOT/test/fuzz/regressions/$t"
  if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
    "$BUILD/bin/fuzz_$t" "$dir"/* 2>&1 | tail -1
  fi
done
declare -A RUNS=([model_file]=3000000 [text]=300000 [options]=1000000 [template]=300000
                 [gguf]=50000 [hf]=25000)
declare -A MAXLEN=([model_file]=65536 [text]=20000 [options]=20000 [template]=8192
                   [gguf]=65536 [hf]=65536)
for t in model_file text options template gguf hf; do
  work="$BUILD/corpus-$t"
  rm -rf "$work" && mkdir -p "$work"
  if [ -n "${FUZZ_SECONDS:-}" ]; then budget=(-max_total_time="$FUZZ_SECONDS");
  else budget=(-runs="${RUNS[$t]}"); fi
  echo "== fuzz_$t ${budget[*]}"
  "$BUILD/bin/fuzz_$t" "${budget[@]}" -seed=1 -max_len="${MAXLEN[$t]}" \
    -artifact_prefix="$BUILD/crashes/$t-" -print_final_stats=1 \
    "$work" "$ROOT/test/fuzz/corpus/$t" 2>&1 | tail -12
done
