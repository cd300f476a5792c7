//===- fuzz_model_file.cpp - libFuzzer target: the .kiln reader -----------===//
//
// Any bytes: validated by the runtime's reader (FlatBuffers verifier +
// semantic checks) and, when accepted, every token decoded.
//
//===----------------------------------------------------------------------===//

#include "kiln/rt/model.h"

#include <algorithm>

using namespace kiln::rt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ModelFile model;
  if (loadModelBuffer(std::vector<uint8_t>(data, data + size), model))
    return 0;
  Tokenizer tokenizer(model);
  size_t total = 0;
  // Every piece the file defines, plus ids around the vocabulary's ends
  // (the declared vocabulary itself may be huge).
  int64_t last = std::min<int64_t>(model.vocabSize, (int64_t)model.pieces.size() + 300);
  for (int64_t id = -1; id <= last; ++id)
    total += tokenizer.piece((int32_t)id).size();
  for (int64_t id = model.vocabSize - 2; id <= model.vocabSize + 1; ++id)
    total += tokenizer.piece((int32_t)id).size();
  kiln_model_info info{KILN_ABI_VERSION, 0, 1, 1, 1, 1, 1, "", 0};
  (void)checkCompatible(model, info);
  return total == SIZE_MAX;
}
