// Calls a compiled model's decode entry point directly with a position the
// caller chooses (argv[2]), bypassing the runtime's checks, to exercise the
// generated code's own guard on the KV cache position.
#include "kiln/rt/model.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char **argv) {
  kiln::rt::ModelFile model;
  if (auto err = kiln::rt::loadModelFile(argv[1], model)) {
    std::fprintf(stderr, "%s\n", err->message.c_str());
    return 2;
  }
  int64_t pos = std::atoll(argv[2]);
  const kiln_model_info &info = kiln_model;
  int64_t c = info.capacity, w = info.kv_width;
  std::vector<float> cache(info.num_layers * 2 * c * w),
      logits(info.vocab_size);
  kiln_memref_1d weights = {
      (void *)model.data, (void *)model.data, 0, {(int64_t)model.size}, {1}};
  auto *offs = model.weightOffsets.data();
  kiln_memref_1d offsets = {
      offs, offs, 0, {(int64_t)model.weightOffsets.size()}, {1}};
  int32_t token = 1;
  kiln_memref_2d tok = {&token, &token, 0, {1, 1}, {1, 1}};
  kiln_memref_5d cacheRef = {cache.data(),
                             cache.data(),
                             0,
                             {info.num_layers, 2, 1, c, w},
                             {2 * c * w, c * w, c * w, w, 1}};
  kiln_memref_2d out = {logits.data(),
                        logits.data(),
                        0,
                        {1, info.vocab_size},
                        {info.vocab_size, 1}};
  _mlir_ciface_decode(&weights, &offsets, &tok, pos, &cacheRef, &out);
  std::printf("decoded at position %lld\n", (long long)pos);
  return 0;
}
