//===- driver.cpp - The command line of generated executables -------------===//
//
// run(): flags, loading the model, and what the executable prints: streamed
// text, JSON results, scores, whole-sequence logits, interactive
// conversations. The work is the session library's (session.h).
//
//===----------------------------------------------------------------------===//

#include "kiln/rt/driver.h"

#include "json.h"
#include "kiln/rt/chat_template.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <unistd.h>

namespace kiln::rt {

/// --seed, or one from the clock and the process id.
static uint64_t chooseSeed(const Options &opts) {
  if (opts.seed)
    return *opts.seed;
  return (uint64_t)std::chrono::system_clock::now().time_since_epoch().count() ^
         ((uint64_t)getpid() << 32);
}

/// [[v, ...] per step]
static Json logitsJson(const std::vector<std::vector<float>> &rows) {
  Json a = Json::array();
  for (const std::vector<float> &row : rows)
    a.push_back(jsonReals(row.data(), row.size()));
  return a;
}

/// Prints `value` and a newline on stdout.
static void printJson(const Json &value) {
  std::string s = dumpJson(value) + "\n";
  std::fwrite(s.data(), 1, s.size(), stdout);
}

static int fail(const Error &e) {
  std::fprintf(stderr, "kiln: error: %s\n", e.message.c_str());
  if (e.code == kExitUsage)
    std::fprintf(stderr, "try --help\n");
  return e.code;
}

static void printStats(size_t promptTokens, const GenerationResult &r) {
  double prefillRate =
      r.prefillMs > 0 ? promptTokens / (r.prefillMs / 1000) : 0;
  size_t decoded = r.tokens.size() > 0 ? r.tokens.size() - 1 : 0;
  double decodeRate = r.decodeMs > 0 ? decoded / (r.decodeMs / 1000) : 0;
  std::fprintf(stderr,
               "kiln: prompt %zu tokens, %.1f tok/s | generated %zu tokens, "
               "%.1f tok/s | time to first token %.1f ms\n",
               promptTokens, prefillRate, r.tokens.size(), decodeRate,
               r.firstTokenMs);
}

static bool readFile(const std::string &path, std::string &out) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return false;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    out.append(buf, n);
  bool ok = !std::ferror(f);
  std::fclose(f);
  return ok;
}

/// Chat-style loop over the KV cache: every line read from stdin is
/// appended to the conversation and answered; nothing is recomputed.
namespace {
/// The text a generation gives: each chosen token's piece (an end token,
/// unless --ignore-eos, stands for nothing) checked against the --stop
/// strings, kept for the JSON output and, in text mode, printed as it
/// comes, whole UTF-8 characters at a time.
class GeneratedText {
public:
  GeneratedText(const Options &opts, const ModelFile &model,
                const Tokenizer &tokenizer)
      : opts(opts), model(model), tokenizer(tokenizer), stops(opts.stops) {}

  /// The session's onToken: false once a stop string has appeared.
  bool push(int32_t id) {
    if (model.isEndToken(id) && !opts.ignoreEos)
      return true;
    emit(stops.push(tokenizer.piece(id)));
    return !stops.stopped();
  }
  /// Bytes that bypass the stop strings (a beam search's whole text).
  void emit(const std::string &bytes) {
    all += bytes;
    if (opts.output != OutputFormat::Text)
      return;
    std::string ready = stream.push(bytes);
    std::fwrite(ready.data(), 1, ready.size(), stdout);
    std::fflush(stdout);
  }
  /// After generation: whether a stop string ended it; otherwise the bytes
  /// held back for one are emitted. In text mode, prints what the UTF-8
  /// stream still holds and a newline.
  bool finish() {
    bool stopped = stops.stopped();
    if (!stopped)
      emit(stops.flush());
    if (opts.output == OutputFormat::Text) {
      std::string rest = stream.flush() + "\n";
      std::fwrite(rest.data(), 1, rest.size(), stdout);
      std::fflush(stdout);
    }
    return stopped;
  }
  const std::string &text() const { return all; }

private:
  const Options &opts;
  const ModelFile &model;
  const Tokenizer &tokenizer;
  StopMatcher stops;
  Utf8Stream stream;
  std::string all;
};
} // namespace

/// The message a conversation ends with when the context is full.
static int contextFull(int64_t capacity) {
  std::fprintf(stderr,
               "kiln: the context of %lld tokens is full; ending the "
               "conversation\n",
               (long long)capacity);
  return kExitOk;
}

/// The turns of a conversation read from stdin: `turn` gets each line
/// (without its newline) and returns an exit code to end with, or -1 to
/// go on; ends with 0 at EOF.
static int readTurns(const std::function<int(const std::string &)> &turn) {
  std::string line;
  for (;;) {
    if (isatty(0))
      std::fputs("> ", stderr);
    line.clear();
    int c;
    while ((c = std::fgetc(stdin)) != EOF && c != '\n')
      line.push_back((char)c);
    if (c == EOF && line.empty())
      return kExitOk;
    int rc = turn(line);
    if (rc >= 0)
      return rc;
    if (c == EOF)
      return kExitOk;
  }
}

static int interactive(const Options &opts, const ModelFile &model,
                       const Tokenizer &tokenizer, Session &session, Rng &rng,
                       int64_t capacity) {
  int64_t pos = 0;
  std::optional<int32_t> pending; // last reply token, not yet in the cache
  bool first = true;
  auto turn = [&](const std::string &text) -> int {
    std::vector<int32_t> ids;
    if (auto err = tokenizer.encode(text, ids, opts.parseSpecial))
      return fail(*err);
    if (!first && model.addBos && model.bosId >= 0 && !ids.empty() &&
        ids[0] == model.bosId)
      ids.erase(ids.begin()); // BOS starts the conversation only
    first = false;
    if (pending)
      ids.insert(ids.begin(), *pending);
    if (ids.empty())
      return -1;
    if (pos + (int64_t)ids.size() > capacity)
      return contextFull(capacity);
    Utf8Stream stream;
    // A reply also ends at a --stop string (printed up to it).
    StopMatcher stops(opts.stops);
    GenerationResult r;
    auto onToken = [&](int32_t id) {
      if (model.isEndToken(id))
        return false;
      std::string piece = tokenizer.piece(id);
      std::string ready = stream.push(stops.push(piece));
      std::fwrite(ready.data(), 1, ready.size(), stdout);
      std::fflush(stdout);
      return !stops.stopped() &&
             piece.find('\n') == std::string::npos; // a reply is one line
    };
    if (auto err = session.generateAt(pos, ids, opts.nPredict, opts.sampling,
                                      rng, false, false, onToken, r))
      return fail(*err);
    std::string rest =
        stream.push(stops.stopped() ? std::string() : stops.flush()) +
        stream.flush();
    if (stops.stopped() || r.tokens.empty() ||
        tokenizer.piece(r.tokens.back()).find('\n') == std::string::npos)
      rest += "\n";
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fflush(stdout);
    pos += ids.size() + (r.tokens.empty() ? 0 : r.tokens.size() - 1);
    pending = r.tokens.empty() ? std::nullopt
                               : std::optional<int32_t>(r.tokens.back());
    if (opts.stats)
      printStats(ids.size(), r);
    if (r.stop == StopReason::Context || pos >= capacity)
      return contextFull(capacity);
    return -1;
  };
  if (opts.prompt) {
    int rc = turn(*opts.prompt);
    if (rc >= 0)
      return rc;
  }
  return readTurns([&](const std::string &line) { return turn(line + "\n"); });
}

//===----------------------------------------------------------------------===//
// Chat: --chat and --print-prompt
//===----------------------------------------------------------------------===//

/// ChatML, for models whose file carries no template.
static const char kChatML[] =
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + "
    "'\n' + message['content'] + '<|im_end|>' + '\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}"
    "{%- endif %}";

namespace {
/// A conversation and the template it is rendered with.
struct Conversation {
  std::string source; ///< the Jinja template
  ChatTemplateInput input;

  /// --chat-template (a file, or a built-in name), else the model's.
  std::optional<Error> init(const Options &opts, const ModelFile &model) {
    if (opts.chatTemplate) {
      const std::string &t = *opts.chatTemplate;
      if (!readFile(t, source)) {
        if (t != "chatml")
          return Error{kExitUsage, "--chat-template: cannot read '" + t +
                                       "' (" + std::strerror(errno) +
                                       ") and there is no built-in template "
                                       "of that name (built-in: chatml)"};
        source = kChatML;
      }
    } else if (model.chatTemplate.empty()) {
      return Error{kExitUsage,
                   "the model file carries no chat template; give "
                   "--chat-template FILE or --chat-template chatml"};
    } else {
      source = model.chatTemplate;
    }
    // The special tokens' text as the vocabulary holds it.
    auto text = [&](int64_t id) {
      return id >= 0 && id < (int64_t)model.pieces.size() ? model.pieces[id]
                                                          : std::string();
    };
    input.bosToken = text(model.bosId);
    input.eosToken = text(model.eosId);
    if (opts.chatTemplateKwargs) {
      Json vars = Json::parse(*opts.chatTemplateKwargs, nullptr,
                              /*allow_exceptions=*/false);
      if (!vars.is_object())
        return Error{kExitUsage, "--chat-template-kwargs must be a JSON "
                                 "object, got '" +
                                     *opts.chatTemplateKwargs + "'"};
      input.variablesJson = *opts.chatTemplateKwargs;
    }
    if (opts.system)
      input.messages.push_back({"system", *opts.system});
    if (opts.messagesFile) {
      std::string json;
      if (!readFile(*opts.messagesFile, json))
        return Error{kExitUsage, "cannot read '" + *opts.messagesFile +
                                     "': " + std::strerror(errno)};
      Json list = Json::parse(json, nullptr, /*allow_exceptions=*/false);
      if (!list.is_array())
        return Error{kExitUsage, "--messages: '" + *opts.messagesFile +
                                     "' is not a JSON array of messages"};
      for (size_t i = 0; i < list.size(); ++i) {
        const Json &m = list[i];
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() ||
            !m.contains("content") || !m["content"].is_string())
          return Error{kExitUsage,
                       "--messages: message " + std::to_string(i) +
                           " is not {\"role\": string, \"content\": string}"};
        input.messages.push_back(
            {m["role"].get<std::string>(), m["content"].get<std::string>()});
      }
    }
    if (opts.prompt)
      input.messages.push_back({"user", *opts.prompt});
    return std::nullopt;
  }

  /// The prompt: the conversation rendered with the assistant's turn open.
  std::optional<Error> render(std::string &text) const {
    std::string error;
    if (!renderChatTemplate(source, input, text, error))
      return Error{kExitPrompt,
                   "the chat template cannot be rendered: " + error};
    return std::nullopt;
  }

  /// The prompt's tokens, special tokens written in it parsed: the template
  /// writes BOS where the model wants it, so none is added (as
  /// transformers' apply_chat_template).
  std::optional<Error> tokens(const Tokenizer &tokenizer,
                              const ModelFile &model, const std::string &text,
                              std::vector<int32_t> &ids) const {
    if (auto err = tokenizer.encode(text, ids, /*parseSpecial=*/true))
      return err;
    if (model.addBos && model.bosId >= 0 && !ids.empty())
      ids.erase(ids.begin());
    return std::nullopt;
  }
};
} // namespace

static int printPrompt(const Options &opts, const ModelFile &model,
                       const Tokenizer &tokenizer) {
  Conversation chat;
  std::string text;
  if (auto err = chat.init(opts, model))
    return fail(*err);
  if (auto err = chat.render(text))
    return fail(*err);
  if (opts.output == OutputFormat::Text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return kExitOk;
  }
  std::vector<int32_t> ids;
  if (auto err = chat.tokens(tokenizer, model, text, ids))
    return fail(*err);
  Json out;
  out["prompt"] = jsonText(text);
  out["prompt_tokens"] = ids;
  printJson(out);
  return kExitOk;
}

/// --chat: each turn renders the whole conversation and computes only the
/// tokens after the longest prefix the KV cache already holds (the
/// previous prompt and reply, as far as the template renders them the same
/// way again).
static int chatLoop(const Options &opts, const ModelFile &model,
                    const Tokenizer &tokenizer, Session &session, Rng &rng,
                    int64_t capacity) {
  Conversation chat;
  if (auto err = chat.init(opts, model))
    return fail(*err);
  std::vector<int32_t> cached; // the tokens whose keys and values are cached
  auto turn = [&]() -> int {
    std::string text;
    std::vector<int32_t> ids;
    if (auto err = chat.render(text))
      return fail(*err);
    if (auto err = chat.tokens(tokenizer, model, text, ids))
      return fail(*err);
    if (ids.empty())
      return fail({kExitPrompt, "the chat template renders an empty prompt"});
    size_t common = 0;
    while (common < cached.size() && common + 1 < ids.size() &&
           cached[common] == ids[common])
      ++common;
    if ((int64_t)ids.size() >= capacity) {
      std::fprintf(stderr,
                   "kiln: the conversation needs %zu tokens of a context of "
                   "%lld; ending it\n",
                   ids.size(), (long long)capacity);
      return kExitOk;
    }
    std::vector<int32_t> fresh(ids.begin() + common, ids.end());
    // The reply as printed: up to an end token or a --stop string.
    GeneratedText reply(opts, model, tokenizer);
    GenerationResult r;
    if (auto err = session.generateAt(
            (int64_t)common, fresh, opts.nPredict, opts.sampling, rng, false,
            false, [&](int32_t id) { return reply.push(id); }, r))
      return fail(*err);
    reply.finish();
    cached.assign(ids.begin(), ids.end());
    if (!r.tokens.empty()) // the last token chosen is not in the cache yet
      cached.insert(cached.end(), r.tokens.begin(), r.tokens.end() - 1);
    if (opts.stats) {
      std::fprintf(stderr, "kiln: prompt of %zu tokens, %zu of them cached | ",
                   ids.size(), common);
      printStats(fresh.size(), r);
    }
    chat.input.messages.push_back({"assistant", reply.text()});
    if (r.stop == StopReason::Context || (int64_t)cached.size() + 1 >= capacity)
      return contextFull(capacity);
    return -1;
  };
  if (opts.prompt) {
    int rc = turn();
    if (rc >= 0)
      return rc;
  }
  return readTurns([&](const std::string &line) {
    chat.input.messages.push_back({"user", line});
    return turn();
  });
}

/// run() for encoder-decoder models, after the model is loaded.
static int runSeq2Seq(const Options &opts, const ModelFile &model,
                      const Tokenizer &tokenizer, const EntryPoints &entry) {
  if (opts.interactive || opts.perplexityFile || opts.scoreText ||
      opts.forwardLogits || opts.chat || opts.printPrompt)
    return fail({kExitUsage, "-i, --chat, --print-prompt, --perplexity, "
                             "--score and --forward-logits are not supported "
                             "for encoder-decoder models"});
  if (opts.beams > 1 && (opts.ignoreEos || opts.logits))
    return fail(
        {kExitUsage, "--beams does not combine with --ignore-eos or --logits"});
  if (opts.promptTokens)
    return fail({kExitUsage, "encoder-decoder models take the source as -p "
                             "TEXT or --src-tokens IDS"});
  std::vector<int32_t> src;
  if (opts.srcTokens)
    src = *opts.srcTokens;
  else if (auto err = tokenizer.encode(*opts.prompt, src, opts.parseSpecial))
    return fail(*err);

  Seq2SeqSession session(model, entry);
  if (auto err = session.init())
    return fail(*err);
  Seq2SeqResult result;
  if (auto err = session.encode(src, result))
    return fail(*err);

  uint64_t seed = chooseSeed(opts);
  Rng rng(seed);
  bool text = opts.output == OutputFormat::Text;
  auto pieces = [&](const std::vector<int32_t> &ids) {
    std::string out;
    for (int32_t id : ids)
      if (!model.isEndToken(id))
        out += tokenizer.piece(id);
    return out;
  };
  // The text of the tokens chosen (up to a stop string).
  GeneratedText generated(opts, model, tokenizer);
  if (opts.beams > 1) {
    if (auto err =
            session.beamSearch(opts.nPredict, opts.beams, opts.lengthPenalty,
                               opts.earlyStop, result))
      return fail(*err);
    generated.emit(pieces(result.tokens));
  } else if (auto err = session.generate(
                 opts.nPredict, opts.sampling, rng, opts.ignoreEos, opts.logits,
                 [&](int32_t id) { return generated.push(id); }, result)) {
    return fail(*err);
  }
  if (generated.finish())
    result.stop = StopReason::Stop;
  if (text) {
    if (opts.stats) {
      size_t steps = result.tokens.size();
      double rate = result.decodeMs > 0
                        ? result.decodeCalls / (result.decodeMs / 1000)
                        : 0;
      std::fprintf(stderr,
                   "kiln: source %zu tokens, encoded in %.1f ms | generated "
                   "%zu tokens, %lld decode steps, %.1f steps/s%s\n",
                   src.size(), result.encodeMs, steps,
                   (long long)result.decodeCalls, rate,
                   opts.beams > 1
                       ? (" (" + std::to_string(opts.beams) + " beams)").c_str()
                       : "");
    }
    return kExitOk;
  }
  Json out;
  out["tokens"] = result.tokens;
  out["text"] = jsonText(generated.text());
  out["source_tokens"] = src;
  out["stop_reason"] = stopReasonName(result.stop);
  out["seed"] = seed;
  if (opts.logits)
    out["logits"] = logitsJson(result.logits);
  if (opts.beams > 1) {
    Json beams = Json::array();
    for (const Hypothesis &h : result.hypotheses) {
      Json beam;
      beam["tokens"] = h.tokens;
      beam["text"] = jsonText(pieces(h.tokens));
      beam["log_prob"] = jsonReal(h.logProb);
      beam["score"] = jsonReal(h.score);
      beams.push_back(std::move(beam));
    }
    out["beams"] = std::move(beams);
  }
  Json &timings = out["timings"];
  timings["source_tokens"] = src.size();
  timings["generated_tokens"] = result.tokens.size();
  timings["encode_ms"] = jsonMs(result.encodeMs);
  timings["decode_ms"] = jsonMs(result.decodeMs);
  timings["decode_steps"] = result.decodeCalls;
  printJson(out);
  return kExitOk;
}

int run(int argc, char **argv, const EntryPoints &entry) {
  Options opts;
  opts.modelPath = entry.info.model_path ? entry.info.model_path : "";
  if (auto err = parseOptions(argc, argv, opts))
    return fail(*err);
  if (opts.help) {
    std::fputs(helpText(argv[0]).c_str(), stdout);
    return kExitOk;
  }
  setThreads(opts.threads);
  reuseFreedMemory();

  ModelFile model;
  if (auto err =
          loadModelFile(opts.modelPath, model, sessionMemoryBytes(entry.info)))
    return fail(*err);
  if (opts.verbose)
    std::fprintf(stderr,
                 "kiln: %s: %llu bytes (FlatBuffer and padding %llu, data "
                 "section %llu); "
                 "weights %s\n",
                 opts.modelPath.c_str(), (unsigned long long)model.fileSize,
                 (unsigned long long)model.dataOffset,
                 (unsigned long long)model.size, model.placement.c_str());
  if (auto err = checkCompatible(model, entry.info))
    return fail(*err);
  if (opts.verbose)
    std::fprintf(stderr,
                 "kiln: KV cache: %lld positions x %lld layers x %lld wide, "
                 "%s (%llu bytes with the logits)\n",
                 (long long)entry.info.capacity,
                 (long long)entry.info.num_layers,
                 (long long)entry.info.kv_width,
                 entry.info.kv_element_bytes == 2 ? "16-bit" : "f32",
                 (unsigned long long)sessionMemoryBytes(entry.info));
  Tokenizer tokenizer(model);
  if (entry.info.kind == KILN_MODEL_ENCODER_DECODER)
    return runSeq2Seq(opts, model, tokenizer, entry);
  if (opts.srcTokens || opts.beams > 1)
    return fail({kExitUsage, "--src-tokens and --beams are for "
                             "encoder-decoder models; this one is "
                             "decoder-only"});
  if (opts.printPrompt)
    return printPrompt(opts, model, tokenizer);
  Session session(model, entry);
  if (auto err = session.init())
    return fail(*err);
  int64_t capacity = entry.info.capacity;

  uint64_t seed = chooseSeed(opts);
  Rng rng(seed);
  if (opts.interactive)
    return interactive(opts, model, tokenizer, session, rng, capacity);
  if (opts.chat)
    return chatLoop(opts, model, tokenizer, session, rng, capacity);

  if (opts.perplexityFile || opts.scoreText) {
    std::string text;
    if (opts.scoreText)
      text = *opts.scoreText;
    else if (!readFile(*opts.perplexityFile, text))
      return fail({kExitUsage, "cannot read '" + *opts.perplexityFile +
                                   "': " + std::strerror(errno)});
    std::vector<int32_t> ids;
    if (auto err = tokenizer.encode(text, ids, opts.parseSpecial))
      return fail(*err);
    ScoreResult r;
    if (auto err = session.score(ids, opts.stride, r))
      return fail(*err);
    if (opts.output == OutputFormat::Json) {
      Json out;
      out["tokens_scored"] = r.nll.size();
      out["mean_nll"] = jsonReal(r.meanNll);
      out["perplexity"] = jsonReal(r.perplexity);
      out["window"] = r.window;
      out["stride"] = r.stride;
      out["score_ms"] = jsonMs(r.ms);
      Json &nll = out["nll"] = Json::array();
      for (double x : r.nll)
        nll.push_back(jsonReal(x));
      printJson(out);
    } else {
      std::printf("perplexity %.6f over %zu tokens (mean NLL %.6f nats/token, "
                  "window %lld, stride %lld)\n",
                  r.perplexity, r.nll.size(), r.meanNll, (long long)r.window,
                  (long long)r.stride);
    }
    return kExitOk;
  }

  std::vector<int32_t> prompt;
  if (opts.promptTokens) {
    prompt = *opts.promptTokens;
    for (int32_t id : prompt)
      if (id >= model.vocabSize)
        return fail({kExitPrompt, "token id " + std::to_string(id) +
                                      " is outside the vocabulary of " +
                                      std::to_string(model.vocabSize)});
  } else if (auto err =
                 tokenizer.encode(*opts.prompt, prompt, opts.parseSpecial)) {
    return fail(*err);
  }
  if (prompt.empty())
    return fail({kExitPrompt, "the prompt is empty"});
  if ((int64_t)prompt.size() > capacity)
    return fail({kExitPrompt, "prompt has " + std::to_string(prompt.size()) +
                                  " tokens but the context holds " +
                                  std::to_string(capacity)});

  if (opts.forwardLogits) {
    std::vector<float> logits;
    if (auto err = session.forward(prompt, logits))
      return fail(*err);
    Json out;
    out["tokens"] = prompt;
    Json &rows = out["logits"] = Json::array();
    size_t vocab = model.vocabSize;
    for (size_t i = 0; i < prompt.size(); ++i)
      rows.push_back(jsonReals(logits.data() + i * vocab, vocab));
    printJson(out);
    return kExitOk;
  }

  GeneratedText generated(opts, model, tokenizer);
  GenerationResult result;
  if (auto err = session.generateAt(
          0, prompt, opts.nPredict, opts.sampling, rng, opts.ignoreEos,
          opts.logits, [&](int32_t id) { return generated.push(id); }, result))
    return fail(*err);
  if (generated.finish())
    result.stop = StopReason::Stop;

  if (opts.output == OutputFormat::Text) {
    if (opts.stats)
      printStats(prompt.size(), result);
    return kExitOk;
  }
  Json out;
  out["tokens"] = result.tokens;
  out["text"] = jsonText(generated.text());
  out["prompt_tokens"] = prompt;
  out["stop_reason"] = stopReasonName(result.stop);
  out["seed"] = seed;
  if (opts.logits)
    out["logits"] = logitsJson(result.logits);
  Json &timings = out["timings"];
  timings["prompt_tokens"] = prompt.size();
  timings["generated_tokens"] = result.tokens.size();
  timings["prefill_ms"] = jsonMs(result.prefillMs);
  timings["decode_ms"] = jsonMs(result.decodeMs);
  timings["first_token_ms"] = jsonMs(result.firstTokenMs);
  printJson(out);
  return kExitOk;
}

} // namespace kiln::rt
