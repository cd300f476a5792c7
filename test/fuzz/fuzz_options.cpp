//===- fuzz_options.cpp - libFuzzer target: the executable's flag parser --===//
//
// The input split at NUL bytes is argv; parsing either succeeds with values
// in their documented ranges or fails with a usage error.
//
//===----------------------------------------------------------------------===//

#include "kiln/rt/driver.h"

#include <cstdlib>

using namespace kiln::rt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<std::string> args = {"exe"};
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur.push_back((char)data[i]);
    }
  }
  args.push_back(cur);
  std::vector<char *> argv;
  for (std::string &a : args)
    argv.push_back(a.data());
  Options o;
  if (auto err = parseOptions((int)argv.size(), argv.data(), o)) {
    if (err->code != kExitUsage || err->message.empty())
      std::abort();
    return 0;
  }
  if (o.help)
    return 0;
  if (o.sampling.temperature < 0 || o.sampling.topK < 0 ||
      !(o.sampling.topP > 0 && o.sampling.topP <= 1) || o.nPredict < -1 ||
      o.threads < 0 || o.stride < 0) // threads 0: every CPU (the default)
    std::abort();
  return 0;
}
