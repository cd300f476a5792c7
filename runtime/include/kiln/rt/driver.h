//===- driver.h - The command line of generated executables -----*- C++ -*-===//
//
// The driver behind a generated executable's main(): its flags, and run(),
// which loads the model and prints generation, scores or logits as text or
// JSON, or holds an interactive conversation. A thin layer over the session
// library (kiln/rt/session.h).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RT_DRIVER_H
#define KILN_RT_DRIVER_H

#include "kiln/rt/session.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::rt {

enum class OutputFormat { Text, Json };

struct Options {
  std::string modelPath;
  std::optional<std::string> prompt;
  std::optional<std::vector<int32_t>> promptTokens;
  /// Encoder-decoder models: the source as ids (-p gives it as text).
  std::optional<std::vector<int32_t>> srcTokens;
  int64_t beams = 1;          ///< --beams: 1 = no beam search
  double lengthPenalty = 1.0; ///< --length-penalty
  bool earlyStop = false;     ///< --early-stop
  int64_t nPredict = 128;
  SamplingParams sampling;
  std::optional<uint64_t> seed;
  int64_t threads = 0; ///< -t: 0 = every CPU this process may run on
  bool ignoreEos = false;
  std::vector<std::string> stops; ///< --stop, repeatable
  /// Control tokens written in prompt text become their ids
  /// (--no-parse-special turns it off).
  bool parseSpecial = true;
  OutputFormat output = OutputFormat::Text;
  bool logits = false;
  bool forwardLogits = false;
  std::optional<std::string> perplexityFile; ///< --perplexity FILE
  std::optional<std::string> scoreText;      ///< --score TEXT
  int64_t stride = 0;                        ///< 0: half the context
  bool interactive = false;                  ///< -i
  /// Chat: --chat (a conversation over the KV cache, each turn rendered
  /// with the chat template), --print-prompt (print the rendered prompt and
  /// exit), the template (--chat-template FILE or built-in NAME; default:
  /// the model's), --system TEXT and --messages FILE (a JSON array of
  /// {"role", "content"}: the conversation so far).
  bool chat = false;
  bool printPrompt = false;
  std::optional<std::string> chatTemplate;
  std::optional<std::string> system;
  std::optional<std::string> messagesFile;
  /// --chat-template-kwargs JSON: more template variables.
  std::optional<std::string> chatTemplateKwargs;
  bool stats = true;                         ///< the stats line on stderr
  bool verbose = false;                      ///< -v: how the model was loaded
  bool help = false;
};

/// Parses argv (llama.cpp-style names). Errors carry kExitUsage.
std::optional<Error> parseOptions(int argc, char **argv, Options &out);
std::string helpText(const char *argv0);

/// The executable's main, with the entry points to call: returns the exit
/// code (ExitCode).
int run(int argc, char **argv, const EntryPoints &entry);

} // namespace kiln::rt

#endif // KILN_RT_DRIVER_H
