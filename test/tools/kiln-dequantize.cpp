//===- kiln-dequantize.cpp - kiln::rt::dequantizeRow over stdin -----------===//
//
//   kiln-dequantize TYPE < BLOCKS > FLOAT32S
//
// The runtime library's reference dequantizer (kiln/rt/dtype.h) over the
// raw blocks of weight type TYPE (F16, BF16, Q8_0, Q4_0, ..., Q6_K; whole
// blocks) on stdin, written to stdout as little-endian float32.
// test/Convert/dequantize.test compares it bit for bit with ggml's own
// (llama-ref --dequantize). Exit status 1 with a message on errors.
//
//===----------------------------------------------------------------------===//

#include "kiln/rt/dtype.h"

#include "kiln_generated.h"

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: kiln-dequantize TYPE < BLOCKS > FLOAT32S\n");
    return 1;
  }
  const kiln::rt::DTypeInfo *info = nullptr;
  kiln::fb::DType type{};
  for (int t = 0; t <= (int)kiln::fb::DType::MAX; ++t)
    if (kiln::rt::dtypeName((kiln::fb::DType)t) == argv[1]) {
      type = (kiln::fb::DType)t;
      info = kiln::rt::weightTypeInfo(type);
    }
  if (!info) {
    std::fprintf(stderr, "kiln-dequantize: '%s' is not a weight type\n",
                 argv[1]);
    return 1;
  }
  std::vector<uint8_t> in;
  char buf[65536];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, stdin)) > 0)
    in.insert(in.end(), buf, buf + got);
  if (in.size() % info->blockBytes) {
    std::fprintf(stderr,
                 "kiln-dequantize: %zu bytes are not whole %s blocks of %lld\n",
                 in.size(), argv[1], (long long)info->blockBytes);
    return 1;
  }
  int64_t n = (int64_t)in.size() / info->blockBytes * info->blockElems;
  std::vector<float> out(n);
  kiln::rt::dequantizeRow(type, in.data(), out.data(), n);
  if (n && std::fwrite(out.data(), sizeof(float), n, stdout) != (size_t)n) {
    std::fprintf(stderr, "kiln-dequantize: cannot write stdout\n");
    return 1;
  }
  return 0;
}
