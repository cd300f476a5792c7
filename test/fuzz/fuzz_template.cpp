//===- fuzz_template.cpp - libFuzzer target: chat templates
//----------------===//
//
// Any bytes as a chat template, rendered over a fixed conversation: the
// renderer either succeeds or reports an error; it never crashes, loops
// without end or grows without bound (kMaxTemplateSteps, kMaxTemplateOutput
// and kMaxTemplateDepth hold), and fails with a message when it fails.
//
//===----------------------------------------------------------------------===//

#include "kiln/rt/chat_template.h"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace kiln::rt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string source(reinterpret_cast<const char *>(data), size);
  ChatTemplateInput input;
  input.messages = {{"system", "Be brief."},
                    {"user", "hello \xe6\x97\xa5\xe6\x9c\xac"},
                    {"assistant", "<think>\nhm\n</think>\n\nhi"},
                    {"user", "  and?  "}};
  input.bosToken = "<s>";
  input.eosToken = "</s>";
  std::string out, error;
  bool ok = renderChatTemplate(source, input, out, error);
  if (!ok && error.empty())
    std::abort(); // a failure without a message
  if (!ok && !out.empty())
    std::abort(); // partial output on failure
  if (out.size() > kMaxTemplateOutput)
    std::abort();
  return 0;
}
