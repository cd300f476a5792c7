//===- fuzz_hf.cpp - libFuzzer target: Hugging Face directories -----------===//
//
// An input is a whole model directory: config.json, tokenizer.json and
// model.safetensors, each as a little-endian uint32 length then its bytes
// (test/fuzz/make_seeds.py writes the seeds). Conversion either fails with
// a message or yields a model file the runtime accepts.
//
//===----------------------------------------------------------------------===//

#include "fuzz_convert_common.h"

#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string dir = kiln::fuzz::scratchDir() + "/hf";
  static bool made = (mkdir(dir.c_str(), 0700), true);
  (void)made;
  static const char *const files[] = {"config.json", "tokenizer.json",
                                      "model.safetensors"};
  for (const char *name : files) {
    uint32_t n = 0;
    if (size >= 4) {
      std::memcpy(&n, data, 4);
      data += 4;
      size -= 4;
    }
    n = n > size ? (uint32_t)size : n;
    kiln::fuzz::writeFile(dir + "/" + name, data, n);
    data += n;
    size -= n;
  }
  kiln::fuzz::convertAndCheck(dir);
  return 0;
}
