//===- fuzz_text.cpp - libFuzzer target: tokenizer, streaming, JSON -------===//
//
// Any bytes as text: byte-level encoding and decoding round-trip exactly,
// streaming in arbitrary chunks reproduces the input, and JSON escaping
// always yields printable ASCII or valid UTF-8 between quotes.
//
//===----------------------------------------------------------------------===//

#include "runtime_internal.h"

#include <cstdlib>

using namespace kiln::rt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static ModelFile *model = [] {
    auto *m = new ModelFile();
    m->vocabSize = 300;
    m->contextLength = 64;
    return m;
  }();
  static Tokenizer tokenizer(*model);
  std::string text(reinterpret_cast<const char *>(data), size);

  std::vector<int32_t> ids;
  if (tokenizer.encode(text, ids))
    std::abort();
  std::string back;
  for (int32_t id : ids)
    back += tokenizer.piece(id);
  if (back != text)
    std::abort();

  // Stream in chunks whose sizes come from the input itself.
  Utf8Stream stream;
  std::string out;
  for (size_t i = 0; i < size;) {
    size_t n = 1 + (data[i] % 5);
    out += stream.push(text.substr(i, n));
    i += n;
  }
  out += stream.flush();
  if (out != text)
    std::abort();

  std::string json = jsonString(text);
  if (json.size() < 2 || json.front() != '"' || json.back() != '"')
    std::abort();
  for (unsigned char c : json)
    if (c < 0x20)
      std::abort();
  return 0;
}
