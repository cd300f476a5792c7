//===- fuzz_model_file.cpp - libFuzzer target: the .kiln reader -----------===//
//
// Any bytes: validated by the runtime's reader (FlatBuffers verifier +
// semantic checks) and, when accepted, every token decoded.
//
//===----------------------------------------------------------------------===//

#include "runtime_internal.h"

using namespace kiln::rt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ModelFile model;
  if (loadModelBuffer(std::vector<uint8_t>(data, data + size), model))
    return 0;
  Tokenizer tokenizer(model);
  size_t total = 0;
  for (int64_t id = -1; id <= model.vocabSize; ++id)
    total += tokenizer.piece((int32_t)id).size();
  kiln_model_info info{KILN_ABI_VERSION, 0, 1, 1, 1, 1, 1, "", 0};
  (void)checkCompatible(model, info);
  return total == SIZE_MAX;
}
